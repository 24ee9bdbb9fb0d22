"""Mathematical equivalence through math-verify, on the extracted answer only.

This verifier runs in an isolated worker process (see guard.py): sympy can hang on hostile
input, sometimes inside C code that no signal interrupts, and math-verify's own timeout uses
SIGALRM, which only works on a main thread (verl's reward loop calls compute_score from an
executor thread). In the worker, math-verify's timeouts are live and raise, so a timeout is
recorded as one, not returned as a silent False.
"""
from __future__ import annotations

from typing import Any

from engine.verifiers.base import TIMEOUT, GroundTruthError, VerifyResult
from engine.verifiers.extract import extract_or_fail


def _as_latex(text: str) -> str:
    return "$" + text.strip().strip("$").strip() + "$"


def verify_math(output: str, truth: str, params: dict[str, Any]) -> VerifyResult:
    from math_verify import parse, verify
    from math_verify.errors import TimeoutException

    answer = extract_or_fail(output, params)
    if isinstance(answer, VerifyResult):
        return answer
    seconds = max(1, int(params.get("timeout_s", 5)))
    try:
        gold = parse(_as_latex(truth), parsing_timeout=seconds, raise_on_error=True)
        if not gold:
            raise GroundTruthError(f"math truth {truth!r}")
        pred = parse(_as_latex(answer), parsing_timeout=seconds, raise_on_error=True)
        if not pred:
            return VerifyResult.unparsed("unparseable_math", answer)
        ok = bool(verify(gold, pred, timeout_seconds=seconds, raise_on_error=True))
    except TimeoutException:
        return VerifyResult.unparsed(TIMEOUT, answer)
    return VerifyResult.judged(ok, answer)
