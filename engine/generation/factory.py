"""`make_backend`: a GenerationConfig -> the engine it names.

Kept apart from the interface (base.py) so the backends, which implement that interface, are
never imported by it: the backend modules load vLLM or transformers only when chosen.
"""
from __future__ import annotations

from engine.generation.base import GenerationBackend, GenerationConfig


def make_backend(cfg: GenerationConfig) -> GenerationBackend:
    cfg.validate()
    if cfg.backend == "vllm":
        from engine.generation.vllm_backend import VLLMBackend

        return VLLMBackend(cfg)
    from engine.generation.hf_backend import HFBackend

    return HFBackend(cfg)
