"""Verifiers: pure functions (model output, ground truth, params) -> VerifyResult.

This is the core set the synthetic corpus needs (exact, numeric, ocr, iou, math); the full
library of methods.md section 5 (choice sets, yes/no, V-Triune detection, formats, composite
rewards) grows here. Answers are always extracted first (\\boxed{} or <answer>), never verified
against the whole completion, and matches are whole-answer, never substring.
"""
from __future__ import annotations

from engine.verifiers.base import VerifyResult, extract_answer
from engine.verifiers.registry import VERIFIERS, verify

__all__ = ["VERIFIERS", "VerifyResult", "extract_answer", "verify"]
