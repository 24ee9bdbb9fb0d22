"""Which gradus verifier checks a task, for formats that name the task but not the verifier."""
from __future__ import annotations

from engine.data.reasons import Reason, SampleError

# Task names seen in V-Triune, DifficultySampling and Curr-ReFT data -> engine.verifiers names.
TASK_VERIFIERS = {
    "detection": "detection",
    "cv_detection": "detection",
    "grounding": "iou",
    "cv_grounding": "iou",
    "ocr": "ocr",
    "counting": "count",
    "math": "math",
    "puzzle": "math",
    "science": "math",
    "chart": "math",
    "classify": "labels",
    "classification": "labels",
}

# V-Triune's reward_model.verifier names -> ours.
VTRIUNE_VERIFIERS = {"mathverify": "math", "detection": "detection"}


def verifier_for_task(task: str, default: str = "exact") -> str:
    return TASK_VERIFIERS.get(task.strip().lower(), default)


def vtriune_verifier(theirs: str, task: str) -> str:
    """Ours for V-Triune's reward_model.verifier; the task's when they name none. A name we cannot
    map is a record we cannot judge (unknown_verifier), never a guess from the task."""
    if not theirs:
        return verifier_for_task(task)
    if theirs not in VTRIUNE_VERIFIERS:
        raise SampleError(Reason.UNKNOWN_VERIFIER, f"reward_model.verifier {theirs!r}; V-Triune's known: {sorted(VTRIUNE_VERIFIERS)}")
    return VTRIUNE_VERIFIERS[theirs]
