"""Which gradus verifier checks a task, for formats that name the task but not the verifier."""
from __future__ import annotations

# Task names seen in V-Triune, DifficultySampling and Curr-ReFT data -> engine.verifiers names.
TASK_VERIFIERS = {
    "detection": "iou",
    "cv_detection": "iou",
    "grounding": "iou",
    "cv_grounding": "iou",
    "ocr": "ocr",
    "counting": "numeric",
    "math": "math",
    "puzzle": "math",
    "science": "math",
    "chart": "math",
    "classify": "exact",
    "classification": "exact",
}

# V-Triune's reward_model.verifier names -> ours.
VTRIUNE_VERIFIERS = {"mathverify": "math", "detection": "iou"}


def verifier_for_task(task: str, default: str = "exact") -> str:
    return TASK_VERIFIERS.get(task.strip().lower(), default)
