"""The result every verifier returns, and the reason codes it can carry."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from engine.errors import error_detail

# Reason codes (VerifyResult.reason). Empty means the answer was parsed and judged.
NO_ANSWER = "no_answer"  # no \boxed{} / <answer> to judge
ANSWER_TOO_LONG = "answer_too_long"  # extracted answer above max_answer_chars
TIMEOUT = "timeout"  # the verifier ran past its time bound and was stopped
WORKER_DIED = "worker_died"  # the isolated worker process crashed (e.g. out of memory)
BAD_GROUND_TRUTH = "bad_ground_truth"  # the dataset's answer cannot be parsed by this verifier

MAX_ANSWER_CHARS = 4096  # default cap on the judged answer; keeps every inline verifier linear-time


@dataclass(frozen=True)
class VerifyResult:
    score: float  # in [0, 1]; continuous for iou/detection/ocr/labels, 0/1 otherwise
    passed: bool  # the verifier's own success rule (thresholds from params)
    extracted: str | None  # the answer that was judged (None: nothing could be extracted)
    reason: str = ""  # why it could not be judged ("" when it was)
    details: dict[str, Any] = field(default_factory=dict, compare=False)  # e.g. matched IoUs

    @classmethod
    def unparsed(cls, reason: str, extracted: str | None = None) -> "VerifyResult":
        return cls(0.0, False, extracted, reason)

    @classmethod
    def crashed(cls, exc: BaseException) -> "VerifyResult":
        """The verifier itself raised: an `error:` reason (an infrastructure failure), never a wrong answer."""
        return cls.unparsed(f"error:{error_detail(exc, limit=None, message_limit=120)}")

    @classmethod
    def judged(cls, ok: bool, extracted: str, score: float | None = None, **details: Any) -> "VerifyResult":
        return cls(float(ok) if score is None else float(score), bool(ok), extracted, "", details)

    @property
    def infrastructure_failure(self) -> bool:
        """Could not judge because of the data or the machinery (bad ground truth, a crashed or
        failing verifier), not because of the model: callers record an error, not a wrong answer."""
        return self.reason.startswith((BAD_GROUND_TRUTH, "error:", WORKER_DIED))


Verifier = Callable[[str, str, dict[str, Any]], VerifyResult]


class GroundTruthError(ValueError):
    """The dataset's answer does not fit the verifier: a data problem, reported as bad_ground_truth."""
