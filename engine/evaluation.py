"""Accuracy of a model on canonical samples: generate through any backend, judge with verifiers."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Sequence

from engine.data.images import ImagePolicy
from engine.data.sample import Sample
from engine.generation.base import GenerationBackend, GenerationRequest
from engine.generation.verified import generate_and_verify


@dataclass
class ItemResult:
    id: str
    task: str
    output: str
    extracted: str | None
    score: float
    passed: bool
    reason: str = ""


@dataclass
class ItemError:
    """An item that could not be judged (engine_error, verifier_error): left out of every accuracy."""

    id: str
    task: str
    error: str
    error_detail: str | None


@dataclass
class EvalReport:
    overall_acc: float
    per_family: dict[str, float]
    n: int  # items judged (errors excluded)
    per_family_n: dict[str, int]
    items: list[ItemResult] = field(default_factory=list)
    errors: list[ItemError] = field(default_factory=list)

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("items")
        return d


def evaluate_samples(backend: GenerationBackend, samples: Sequence[Sample], policy: ImagePolicy | None = None) -> EvalReport:
    """One greedy (or configured) generation per sample; accuracy overall and per task over the
    samples that could be judged, the others listed in `errors`."""
    policy = policy or ImagePolicy()
    requests = [[GenerationRequest(s.prompt_messages, s.load_images(policy))] for s in samples]
    items, errors = [], []
    for s, v in zip(samples, generate_and_verify(samples, requests, backend, isolate=True)):
        if v.error:
            errors.append(ItemError(s.id, s.task, v.error, v.error_detail))
            continue
        (g,), (r,) = v.generations, v.verdicts
        items.append(ItemResult(s.id, s.task, g.text, r.extracted, r.score, r.passed, r.reason))
    by_task: dict[str, list[bool]] = defaultdict(list)
    for it in items:
        by_task[it.task].append(it.passed)
    per_family = {t: sum(v) / len(v) for t, v in sorted(by_task.items())}
    overall = sum(it.passed for it in items) / max(1, len(items))
    return EvalReport(overall, per_family, len(items), {t: len(v) for t, v in sorted(by_task.items())}, items, errors)
