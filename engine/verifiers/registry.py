"""The verifier registry: name -> (function(output, ground_truth, params) -> VerifyResult, isolated?).

`verify` and `verify_many` are total: every call returns a VerifyResult within its time bound;
failures carry a reason, they never raise and never pass as a plain wrong answer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from engine.verifiers import boxes, mathverify, text
from engine.verifiers.base import Verifier, VerifyResult
from engine.verifiers.guard import DEFAULT_TIMEOUT_S, RUNNER, run_inline


@dataclass(frozen=True)
class VerifierEntry:
    fn: Verifier
    isolated: bool = False  # run in the guarded worker pool (anything that can hang in C: sympy)


VERIFIERS: dict[str, VerifierEntry] = {
    "exact": VerifierEntry(text.verify_exact),
    "yesno": VerifierEntry(text.verify_yes_no),
    "choice": VerifierEntry(text.verify_choice),
    "numeric": VerifierEntry(text.verify_numeric),
    "count": VerifierEntry(text.verify_count),
    "ocr": VerifierEntry(text.verify_ocr),
    "labels": VerifierEntry(text.verify_labels),
    "iou": VerifierEntry(boxes.verify_iou),
    "detection": VerifierEntry(boxes.verify_detection),
    "math": VerifierEntry(mathverify.verify_math, isolated=True),
}
BOX_VERIFIERS = frozenset({"iou", "detection"})


def register_verifier(name: str, fn: Verifier, isolated: bool = False) -> None:
    """Add a project-specific verifier. Pass isolated=True if it can hang or call into C (sympy, regex on model text)."""
    if name in VERIFIERS:
        raise ValueError(f"verifier {name!r} already registered")
    if isolated and getattr(fn, "__module__", None) == "__main__":
        # Workers import isolated verifiers by module and never re-run the caller's script (guard.py).
        raise ValueError(f"isolated verifier {name!r} must be defined in an importable module, not in the script being run")
    VERIFIERS[name] = VerifierEntry(fn, isolated)


def _entry(name: str) -> VerifierEntry:
    try:
        return VERIFIERS[name]
    except KeyError:
        raise KeyError(f"unknown verifier {name!r}; known: {sorted(VERIFIERS)}") from None


def _timeout(params: dict[str, Any]) -> float:
    # Headroom over the verifier's own timeout so math-verify's TimeoutException fires first.
    return float(params.get("timeout_s", DEFAULT_TIMEOUT_S / 2)) * 2


def verify(name: str, output: str, truth: str, params: dict[str, Any] | None = None) -> VerifyResult:
    """Judge one output. Unknown verifier names are a configuration error and raise KeyError."""
    entry = _entry(name)
    params = params or {}
    if not isinstance(output, str) or not isinstance(truth, str):
        return VerifyResult.unparsed(f"error:TypeError: output and ground truth must be str, got {type(output).__name__}, {type(truth).__name__}")
    if entry.isolated:
        return RUNNER.collect(RUNNER.submit(entry.fn, output, truth, params, _timeout(params)), _timeout(params))
    return run_inline(entry.fn, output, truth, params)


def verify_many(calls: Sequence[tuple[str, str, str, dict[str, Any] | None]]) -> list[VerifyResult]:
    """Judge many (verifier, output, truth, params) at once; isolated calls run in parallel workers."""
    pending: dict[int, Any] = {}
    results: list[VerifyResult | None] = [None] * len(calls)
    for i, (name, output, truth, params) in enumerate(calls):
        entry = _entry(name)
        params = params or {}
        if entry.isolated and isinstance(output, str) and isinstance(truth, str):
            pending[i] = (RUNNER.submit(entry.fn, output, truth, params, _timeout(params)), _timeout(params))
        else:
            results[i] = verify(name, output, truth, params)
    for i, (future, timeout_s) in pending.items():
        results[i] = RUNNER.collect(future, timeout_s)
    return results  # type: ignore[return-value]
