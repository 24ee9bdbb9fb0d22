"""The backend interface shared by scoring, evaluation and rejection sampling."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from PIL import Image

from engine.config import ConfigError
from engine.data.sample import Message
from engine.vision_grid import VisionGrid


@dataclass
class GenerationConfig:
    """config: generation.* -- backend choice, engine settings, sampling."""

    backend: str = "vllm"  # "vllm" | "hf"
    model_path: str = ""
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 16  # caps cost: generation length dominates scoring time
    stop: list[str] = field(default_factory=list)  # e.g. ["</answer>"]: end a completion once its answer is complete (kept in the text)
    hf_batch_size: int = 32
    device: str = "auto"  # hf backend: "auto" (cuda when present), "cpu", "cuda", "cuda:1", ...
    dtype: str = "float32"
    max_model_len: int = 512
    # vLLM on CPU reserves this fraction of memory for the engine (the flag keeps its GPU name).
    gpu_memory_utilization: float = 0.2
    cpu_kvcache_gib: int = 1  # VLLM_CPU_KVCACHE_SPACE, CPU only
    enforce_eager: bool = True
    engine_kwargs: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.backend not in ("vllm", "hf"):
            raise ConfigError(f"generation.backend {self.backend!r} not in ('vllm', 'hf')")
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.max_new_tokens < 1:
            raise ConfigError("generation: need temperature >= 0, 0 < top_p <= 1, max_new_tokens >= 1")


@dataclass
class GenerationRequest:
    messages: Sequence[Message]  # prompt turns, `<image>` placeholders in content
    images: Sequence[Image.Image]
    seed: int | None = None  # per-request sampling seed (vLLM honours it exactly)


@dataclass
class Generation:
    text: str
    num_tokens: int
    finish_reason: str = ""
    prompt_tokens: int = 0  # the request's prompt length in tokens (image tokens included)
    cached_prompt_tokens: int = 0  # of those, how many the engine reused from its prefix cache instead of prefilling

    @property
    def prefilled_tokens(self) -> int:
        return self.prompt_tokens - self.cached_prompt_tokens


class GenerationBackend:
    """Holds one engine for its whole life; `generate` takes many requests at once.

    Backends with a continuously batching engine also stream: `submit` adds one request while
    others run and `poll` advances the engine, returning the requests that finished. Callers can
    then send a follow-up request the moment its predecessor is judged, with no barrier waiting
    for the slowest request of a batch.
    """

    streaming = False

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        raise NotImplementedError

    def submit(self, request: GenerationRequest) -> str:
        raise NotImplementedError(f"{type(self).__name__} does not stream")

    def poll(self) -> list[tuple[str, Generation]]:
        raise NotImplementedError(f"{type(self).__name__} does not stream")

    def vision_grid(self) -> VisionGrid:
        """The merged-patch grid this engine's processor resizes images onto (PISM `patch` masks)."""
        raise NotImplementedError(f"{type(self).__name__} cannot tell its vision grid")

    def close(self) -> None:
        pass
