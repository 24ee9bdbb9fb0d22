"""Verifiers and rewards: one strict, time-bounded library shared by scoring, training and evaluation.

Verifiers are pure functions (model output, ground truth, params) -> VerifyResult. They judge the
extracted answer (\\boxed{} or <answer>), never the whole completion, and whole answers, never
substrings. `verify` / `verify_many` are total and time-bounded (guard.py). See docs/verifiers.md.
"""
from __future__ import annotations

from engine.verifiers.base import VerifyResult
from engine.verifiers.extract import extract_answer, normalize_text
from engine.verifiers.formats import FORMATS, check_format
from engine.verifiers.passk import mean_pass_at_k, pass_at_k
from engine.verifiers.registry import BOX_VERIFIERS, VERIFIERS, register_verifier, verify, verify_many
from engine.verifiers.rewards import RewardConfig, RewardResult, compute_reward
from engine.verifiers.schedule import VTRIUNE_IOU_SCHEDULE, resolve_threshold

__all__ = [
    "BOX_VERIFIERS", "FORMATS", "VERIFIERS", "VTRIUNE_IOU_SCHEDULE", "RewardConfig", "RewardResult", "VerifyResult",
    "check_format", "compute_reward", "extract_answer", "mean_pass_at_k", "normalize_text", "pass_at_k",
    "register_verifier", "resolve_threshold", "verify", "verify_many",
]
