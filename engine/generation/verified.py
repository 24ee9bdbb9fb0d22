"""Generate, then judge every completion with its sample's own verifier: the one path that
`gradus generate`, evaluation, rejection sampling, CMAB's fallback responses and the warm-start
check share.

An item the backend failed on, or a completion its verifier could not judge (bad ground truth, a
crashed verifier), is an error with a reason code (`engine_error`, `verifier_error`), never a wrong
answer. PISM keeps its own loop (its schedule picks every next draw) but judges and records errors
through the same functions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

from PIL import Image

from engine.data.sample import Sample
from engine.errors import error_detail
from engine.generation.base import Generation, GenerationBackend, GenerationRequest
from engine.generation.seeds import draw_seed
from engine.verifiers import VerifyResult, verify_many

ENGINE_ERROR = "engine_error"  # the backend raised: there is no completion to judge
VERIFIER_ERROR = "verifier_error"  # the verifier could not judge a completion (the data or the machinery failed)


@dataclass
class Verified:
    """One item's completions in request order, each with its verdict. `error` is set when the item
    could not be judged: engine_error (no completions) or verifier_error (the first verdict that
    failed; the completions are kept)."""

    generations: list[Generation] = field(default_factory=list)
    verdicts: list[VerifyResult] = field(default_factory=list)
    error: str | None = None
    error_detail: str | None = None

    @property
    def texts(self) -> list[str]:
        return [g.text for g in self.generations]

    @property
    def tokens(self) -> list[int]:
        return [int(g.num_tokens) for g in self.generations]

    @property
    def finish(self) -> list[str]:
        return [g.finish_reason for g in self.generations]

    @property
    def passed(self) -> list[bool]:
        return [bool(v.passed) for v in self.verdicts]

    @property
    def scores(self) -> list[float]:
        return [float(v.score) for v in self.verdicts]

    @property
    def extracted(self) -> list[str | None]:
        return [v.extracted for v in self.verdicts]


def clean_requests(sample: Sample, images: Sequence[Image.Image], seed: int, draws: Iterable[int]) -> list[GenerationRequest]:
    """Draws on the unmasked images; draw d is seeded draw_seed(seed, id, 0.0, d), the seed of PISM's
    ratio-0 draw d, so every model and every job draws the same way for the same seed."""
    return [GenerationRequest(sample.prompt_messages, list(images), seed=draw_seed(seed, sample.id, 0.0, d)) for d in draws]


def engine_failure(exc: Exception) -> tuple[str, str]:
    """(code, detail) of an item whose generation raised."""
    return ENGINE_ERROR, error_detail(exc)


def verdict_failure(verdict: VerifyResult) -> tuple[str, str] | None:
    """(code, detail) when the verifier could not judge (not the model's fault), else None."""
    return (VERIFIER_ERROR, verdict.reason[:500]) if verdict.infrastructure_failure else None


def judge(pairs: Iterable[tuple[Sample, str]]) -> list[VerifyResult]:
    """Each text judged by its sample's verifier, ground truth and params (isolated verifiers in parallel)."""
    return verify_many([(s.verifier, text, s.answer, s.verifier_params) for s, text in pairs])


def generate_and_verify(samples: Sequence[Sample], requests: Sequence[Sequence[GenerationRequest]], backend: GenerationBackend,
                        isolate: bool = False) -> list[Verified]:
    """`requests[i]`: item i's requests. One `Verified` per item, in order.

    Every request goes to the backend in one call, so the engine batches across items (per-request
    seeds keep a draw independent of its batch). If that call fails, every item is an engine_error;
    with `isolate`, each item is retried alone first, so that only the items that fail alone are.
    """
    results = [Verified() for _ in samples]
    completions = _complete_all(requests, backend, isolate, results)
    attach_verdicts(results, completions, judge((s, g.text) for s, gens in zip(samples, completions) for g in gens))
    return results


def attach_verdicts(results: Sequence[Verified], completions: Sequence[Sequence[Generation]], verdicts: Iterable[VerifyResult]) -> None:
    """Give each item its completions and their verdicts (`verdicts` flat, in completion order); the
    first verdict the verifier could not reach makes the item a verifier_error."""
    verdicts = iter(verdicts)
    for res, gens in zip(results, completions):
        for gen in gens:
            verdict = next(verdicts)
            failure = verdict_failure(verdict)
            if failure and res.error is None:
                res.error, res.error_detail = failure
            res.generations.append(gen)
            res.verdicts.append(verdict)


def sample_and_verify(items: Sequence[tuple[Sample, Sequence[Image.Image]]], backend: GenerationBackend, n: int, seed: int) -> list[Verified]:
    """n seeded clean draws per (sample, images) item, each judged; a failing item does not take its batch down."""
    return generate_and_verify([s for s, _ in items], [clean_requests(s, imgs, seed, range(n)) for s, imgs in items], backend, isolate=True)


def _complete(backend: GenerationBackend, requests: Sequence[GenerationRequest]) -> list[Generation]:
    gens = list(backend.generate(requests)) if requests else []
    if len(gens) != len(requests):  # a completion must never be paired with another request's sample
        raise RuntimeError(f"the backend returned {len(gens)} completions for {len(requests)} requests")
    return gens


def _complete_all(requests: Sequence[Sequence[GenerationRequest]], backend: GenerationBackend, isolate: bool,
                  results: list[Verified]) -> list[list[Generation]]:
    """Each item's completions; an item the backend failed on gets none and an engine_error."""
    try:
        flat = iter(_complete(backend, [r for reqs in requests for r in reqs]))
        return [[next(flat) for _ in reqs] for reqs in requests]
    except Exception as exc:  # noqa: BLE001 -- any engine failure: errors, not wrong answers
        if not isolate:
            for res in results:
                res.error, res.error_detail = engine_failure(exc)
            return [[] for _ in requests]
    return [_complete_one(backend, reqs, res) for reqs, res in zip(requests, results)]


def _complete_one(backend: GenerationBackend, requests: Sequence[GenerationRequest], result: Verified) -> list[Generation]:
    try:
        return _complete(backend, requests)
    except Exception as exc:  # noqa: BLE001 -- this item alone fails: an error row, not wrong answers
        result.error, result.error_detail = engine_failure(exc)
        return []
