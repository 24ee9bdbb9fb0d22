"""Accuracy of a model on canonical samples: generate through any backend, judge with verifiers."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Sequence

from engine.data.images import ImagePolicy
from engine.data.sample import Sample
from engine.generation.base import GenerationBackend, GenerationRequest
from engine.verifiers import verify_many


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
class EvalReport:
    overall_acc: float
    per_family: dict[str, float]
    n: int
    per_family_n: dict[str, int]
    items: list[ItemResult] = field(default_factory=list)

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("items")
        return d


def evaluate_samples(backend: GenerationBackend, samples: Sequence[Sample], policy: ImagePolicy | None = None) -> EvalReport:
    """One greedy (or configured) generation per sample; accuracy overall and per task."""
    policy = policy or ImagePolicy()
    requests = [GenerationRequest(s.prompt_messages, s.load_images(policy)) for s in samples]
    generations = backend.generate(requests)
    verdicts = verify_many([(s.verifier, g.text, s.answer, s.verifier_params) for s, g in zip(samples, generations)])
    items = [ItemResult(s.id, s.task, g.text, r.extracted, r.score, r.passed, r.reason) for s, g, r in zip(samples, generations, verdicts)]
    by_task: dict[str, list[bool]] = defaultdict(list)
    for it in items:
        by_task[it.task].append(it.passed)
    per_family = {t: sum(v) / len(v) for t, v in sorted(by_task.items())}
    overall = sum(it.passed for it in items) / max(1, len(items))
    return EvalReport(overall, per_family, len(items), {t: len(v) for t, v in sorted(by_task.items())}, items)
