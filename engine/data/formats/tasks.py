"""Which gradus verifier checks a task, for formats that name the task but not the verifier."""
from __future__ import annotations

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
