"""Training: SFT on Ray Train, GRPO hand-off to verl, the single-process backend."""
