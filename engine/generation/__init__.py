"""Generation backends behind one interface (base.py): `vllm` (vLLM offline engine) and `hf`
(transformers); factory.make_backend builds the one a GenerationConfig names."""
from engine.generation.base import GenerationBackend, GenerationConfig, GenerationRequest, Generation

__all__ = ["Generation", "GenerationBackend", "GenerationConfig", "GenerationRequest"]
