"""Generation backends behind one interface: `vllm` (vLLM offline engine) and `hf` (transformers)."""
from engine.generation.base import GenerationBackend, GenerationConfig, GenerationRequest, Generation, make_backend

__all__ = ["Generation", "GenerationBackend", "GenerationConfig", "GenerationRequest", "make_backend"]
