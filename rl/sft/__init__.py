"""Supervised fine-tuning of a VLM on canonical samples, run by Ray Train's TorchTrainer."""
