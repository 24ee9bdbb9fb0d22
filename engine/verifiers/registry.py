"""The verifier registry: name -> function(output, ground_truth, params) -> VerifyResult."""
from __future__ import annotations

import json
import math
import re
from typing import Any, Callable

from engine.verifiers.base import VerifyResult, extract_answer, normalize_text

Verifier = Callable[[str, str, dict[str, Any]], VerifyResult]
_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")


def _extract_or_fail(output: str) -> str | VerifyResult:
    answer = extract_answer(output)
    if answer is None:
        return VerifyResult.unparsed("no_answer")
    return answer


def verify_exact(output: str, truth: str, params: dict[str, Any]) -> VerifyResult:
    answer = _extract_or_fail(output)
    if isinstance(answer, VerifyResult):
        return answer
    if params.get("normalize", True):
        ok = normalize_text(answer) == normalize_text(truth)
    else:
        ok = answer == truth
    return VerifyResult(float(ok), ok, answer)


def _parse_number(text: str) -> float | None:
    text = text.strip().replace(",", "")
    return float(text) if _NUMBER.match(text) else None


def verify_numeric(output: str, truth: str, params: dict[str, Any]) -> VerifyResult:
    answer = _extract_or_fail(output)
    if isinstance(answer, VerifyResult):
        return answer
    got, want = _parse_number(answer), _parse_number(truth)
    if got is None:
        return VerifyResult(0.0, False, answer, "not_a_number")
    if want is None:
        raise ValueError(f"numeric verifier: ground truth {truth!r} is not a number")
    tol = float(params.get("tolerance", 0.0))
    ok = abs(got - want) <= tol * max(1.0, abs(want)) if params.get("relative") else abs(got - want) <= tol
    return VerifyResult(float(ok), ok, answer)


def edit_distance(a: str, b: str) -> int:
    # Plain Levenshtein DP: strings here are short OCR answers, not worth a dependency.
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def verify_ocr(output: str, truth: str, params: dict[str, Any]) -> VerifyResult:
    """Score 1 - normalized edit distance; passes when the distance is within max_distance."""
    answer = _extract_or_fail(output)
    if isinstance(answer, VerifyResult):
        return answer
    a, t = normalize_text(answer), normalize_text(truth)
    dist = edit_distance(a, t) / max(len(a), len(t), 1)
    return VerifyResult(1.0 - dist, dist <= float(params.get("max_distance", 0.0)), answer)


def parse_box(text: str) -> list[float] | None:
    """A box from '[x1, y1, x2, y2]' or '[{"bbox_2d": [...]}]'; None when it is not exactly one box."""
    try:
        obj = json.loads(text.replace("'", '"'))
    except json.JSONDecodeError:
        return None
    if isinstance(obj, list) and len(obj) == 1 and isinstance(obj[0], dict):
        obj = obj[0]
    if isinstance(obj, dict):
        obj = obj.get("bbox_2d")
    if not (isinstance(obj, list) and len(obj) == 4 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in obj)):
        return None
    x1, y1, x2, y2 = (float(v) for v in obj)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or x2 <= x1 or y2 <= y1:
        return None
    return [x1, y1, x2, y2]


def box_iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def verify_iou(output: str, truth: str, params: dict[str, Any]) -> VerifyResult:
    """Single-box IoU; score is the IoU, pass needs IoU >= threshold (never 'any overlap')."""
    answer = _extract_or_fail(output)
    if isinstance(answer, VerifyResult):
        return answer
    pred, gt = parse_box(answer), parse_box(truth)
    if gt is None:
        raise ValueError(f"iou verifier: ground truth {truth!r} is not a box")
    if pred is None:
        return VerifyResult(0.0, False, answer, "not_a_box")
    iou = box_iou(pred, gt)
    return VerifyResult(iou, iou >= float(params.get("threshold", 0.5)), answer)


def verify_math(output: str, truth: str, params: dict[str, Any]) -> VerifyResult:
    """Mathematical equivalence through math-verify, on the extracted answer only."""
    from math_verify import parse, verify as mv_verify

    answer = _extract_or_fail(output)
    if isinstance(answer, VerifyResult):
        return answer
    timeout = int(params.get("timeout_s", 5))
    gold = parse(f"${truth}$", parsing_timeout=timeout)
    pred = parse(f"${answer}$", parsing_timeout=timeout)
    if not pred:
        return VerifyResult(0.0, False, answer, "unparseable_math")
    ok = bool(mv_verify(gold, pred, timeout_seconds=timeout))
    return VerifyResult(float(ok), ok, answer)


VERIFIERS: dict[str, Verifier] = {
    "exact": verify_exact,
    "numeric": verify_numeric,
    "ocr": verify_ocr,
    "iou": verify_iou,
    "math": verify_math,
}


def verify(name: str, output: str, truth: str, params: dict[str, Any] | None = None) -> VerifyResult:
    try:
        fn = VERIFIERS[name]
    except KeyError:
        raise KeyError(f"unknown verifier {name!r}; known: {sorted(VERIFIERS)}") from None
    return fn(output, truth, params or {})
