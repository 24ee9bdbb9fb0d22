"""Thresholds that change over training (V-Triune raises the detection IoU bar: 0.85 -> 0.95 -> 0.99)."""
from __future__ import annotations

from typing import Any


def resolve_threshold(value: Any, progress: float = 0.0) -> float:
    """A fixed threshold (a number) or a schedule {"schedule": [[from_progress, threshold], ...]}.

    `progress` is the fraction of training done, in [0, 1]; the last milestone at or before it wins.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, dict) and isinstance(value.get("schedule"), list) and value["schedule"]:
        milestones = sorted((float(p), float(t)) for p, t in value["schedule"])
        if milestones[0][0] > 0.0:
            raise ValueError(f"threshold schedule must start at progress 0, got {milestones[0][0]}")
        current = milestones[0][1]
        for start, threshold in milestones:
            if progress >= start:
                current = threshold
        return current
    raise ValueError(f"threshold must be a number or {{'schedule': [[progress, value], ...]}}, got {value!r}")


VTRIUNE_IOU_SCHEDULE = {"schedule": [[0.0, 0.85], [0.1, 0.95], [0.25, 0.99]]}  # the paper's dynamic IoU bar
