"""Box answers: parsing, coordinate scales, IoU, greedy matching; the Curr-ReFT and V-Triune verifiers.

Boxes arrive as `[{'bbox_2d': [x1, y1, x2, y2], 'label': ...}, ...]`, a bare `[x1, y1, x2, y2]`, a
list of bare boxes, or one dict. Coordinates may be pixels (of the image as the model saw it),
0-1, or 0-1000 (Qwen2-VL); both sides are brought to 0-1 before IoU.
"""
from __future__ import annotations

import ast
import json
import math
from dataclasses import dataclass
from typing import Any

from engine.verifiers.base import GroundTruthError, VerifyResult
from engine.verifiers.extract import extract_or_fail
from engine.verifiers.schedule import resolve_threshold

SCALES = ("auto", "pixel", "unit", "thousand")
MAX_BOXES = 100  # a completion listing more boxes than this is not judged (bounds the matching cost)


@dataclass(frozen=True)
class Box:
    x1: float
    y1: float
    x2: float
    y2: float
    label: str | None = None

    @property
    def area(self) -> float:
        return (self.x2 - self.x1) * (self.y2 - self.y1)


class BoxError(ValueError):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _load(text: str) -> Any:
    # JSON first; Python literals (single quotes, as Qwen and V-Triune print them) second.
    # ast.literal_eval never evaluates code, and input length is capped before we get here.
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # JSONDecodeError, or an integer over Python's digit limit
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise BoxError("not_a_box") from None


def _coords(obj: Any) -> list[float]:
    if not (isinstance(obj, (list, tuple)) and len(obj) == 4):
        raise BoxError("not_a_box")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in obj):
        raise BoxError("not_a_box")
    try:
        values = [float(v) for v in obj]
    except OverflowError:
        raise BoxError("non_finite_box") from None
    if not all(math.isfinite(v) for v in values):
        raise BoxError("non_finite_box")
    return values


def parse_boxes(text: str, max_boxes: int = MAX_BOXES) -> list[tuple[list[float], str | None]]:
    """Raw (coords, label) pairs from any accepted layout; raises BoxError(reason) otherwise."""
    obj = _load(text.strip())
    if isinstance(obj, dict):
        obj = [obj]
    if not isinstance(obj, (list, tuple)):
        raise BoxError("not_a_box")
    if len(obj) == 4 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in obj):
        return [(_coords(obj), None)]
    if len(obj) > max_boxes:
        raise BoxError("too_many_boxes")
    out = []
    for item in obj:
        if isinstance(item, dict):
            raw = item.get("bbox_2d", item.get("bbox"))
            label = item.get("label")
            out.append((_coords(raw), None if label is None else str(label).strip().lower()))
        else:
            out.append((_coords(item), None))
    return out


def resolve_scale(scale: str, coords: list[list[float]], image_size: list[int] | None) -> str:
    if scale not in SCALES:
        raise ValueError(f"box scale {scale!r} not one of {SCALES}")
    if scale != "auto":
        return scale
    top = max((max(c) for c in coords), default=0.0)
    if top <= 1.0:
        return "unit"
    if image_size and all(c[0] <= image_size[0] and c[2] <= image_size[0] and c[1] <= image_size[1] and c[3] <= image_size[1] for c in coords):
        return "pixel"
    if top <= 1000.0:
        return "thousand"
    raise BoxError("box_out_of_range")


def to_unit_boxes(raw: list[tuple[list[float], str | None]], scale: str, image_size: list[int] | None, swapped: str = "reject") -> list[Box]:
    """Boxes in 0-1 coordinates. Swapped corners are rejected (`swapped: reject`) or reordered (`fix`)."""
    scale = resolve_scale(scale, [c for c, _ in raw], image_size)
    if scale == "pixel":
        if not image_size:
            raise ValueError("pixel-scale boxes need image_size [width, height] in the verifier params")
        sx, sy = float(image_size[0]), float(image_size[1])
    else:
        sx = sy = 1.0 if scale == "unit" else 1000.0
    boxes = []
    for (x1, y1, x2, y2), label in raw:
        if x2 < x1 or y2 < y1:
            if swapped != "fix":
                raise BoxError("swapped_corners")
            x1, x2, y1, y2 = min(x1, x2), max(x1, x2), min(y1, y2), max(y1, y2)
        box = Box(*(min(1.0, max(0.0, v / s)) for v, s in ((x1, sx), (y1, sy), (x2, sx), (y2, sy))), label=label)
        if box.area <= 0.0:
            raise BoxError("degenerate_box")
        boxes.append(box)
    return boxes


def box_iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    iy = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    inter = ix * iy
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def greedy_match(pred: list[Box], gt: list[Box], match_labels: bool) -> list[tuple[int, int, float]]:
    """Pairs (pred index, gt index, IoU), highest IoU first, each box used once; labels must agree when asked."""
    pairs = sorted(
        ((box_iou(p, g), i, j) for i, p in enumerate(pred) for j, g in enumerate(gt) if not match_labels or p.label == g.label),
        key=lambda t: (-t[0], t[1], t[2]),
    )
    used_p: set[int] = set()
    used_g: set[int] = set()
    out = []
    for iou, i, j in pairs:
        if iou <= 0.0 or i in used_p or j in used_g:
            continue
        used_p.add(i)
        used_g.add(j)
        out.append((i, j, iou))
    return out


def _boxes(text: str, params: dict[str, Any], scale_key: str, is_truth: bool) -> list[Box]:
    try:
        raw = parse_boxes(text, int(params.get("max_boxes", MAX_BOXES)))
        return to_unit_boxes(raw, params.get(scale_key, "auto"), params.get("image_size"), params.get("swapped", "reject"))
    except BoxError as exc:
        if is_truth:
            raise GroundTruthError(f"box truth {text[:80]!r}: {exc.reason}") from None
        raise


def verify_iou(output: str, truth: str, params: dict[str, Any]) -> VerifyResult:
    """Curr-ReFT single-box grounding: score = IoU, pass = IoU >= threshold (0.5), never 'any overlap'."""
    answer = extract_or_fail(output, params)
    if isinstance(answer, VerifyResult):
        return answer
    gt = _boxes(truth, params, "gt_scale", is_truth=True)
    if len(gt) != 1:
        raise GroundTruthError(f"iou truth must be one box, got {len(gt)}")
    try:
        pred = _boxes(answer, params, "pred_scale", is_truth=False)
    except BoxError as exc:
        return VerifyResult.unparsed(exc.reason, answer)
    if len(pred) != 1:
        return VerifyResult.unparsed("not_one_box", answer)
    iou = box_iou(pred[0], gt[0])
    threshold = resolve_threshold(params.get("threshold", 0.5), float(params.get("progress", 0.0)))
    return VerifyResult.judged(iou >= threshold, answer, score=iou, iou=iou, threshold=threshold)


def verify_detection(output: str, truth: str, params: dict[str, Any]) -> VerifyResult:
    """V-Triune detection: greedy IoU matching, per-box credit, size penalty `penalty_base`^|#pred - #gt|.

    credit "binary" (default) counts a matched gt box when IoU >= threshold (the dynamic bar);
    "iou" credits the IoU itself. score = penalty * sum(credit) / #gt; pass = every gt box matched
    above threshold with no extra boxes. Labels must agree when the truth carries labels
    (`match_labels`, default auto).
    """
    answer = extract_or_fail(output, params)
    if isinstance(answer, VerifyResult):
        return answer
    gt = _boxes(truth, params, "gt_scale", is_truth=True)
    try:
        pred = _boxes(answer, params, "pred_scale", is_truth=False)
    except BoxError as exc:
        return VerifyResult.unparsed(exc.reason, answer)
    match_labels = params.get("match_labels", "auto")
    if match_labels == "auto":
        match_labels = any(g.label is not None for g in gt)
    threshold = resolve_threshold(params.get("threshold", 0.5), float(params.get("progress", 0.0)))
    matches = greedy_match(pred, gt, bool(match_labels))
    if not gt:
        return VerifyResult.judged(not pred, answer, score=float(not pred), matched=0, threshold=threshold)
    credit_mode = params.get("credit", "binary")
    hits = [iou for _, _, iou in matches if iou >= threshold]
    credit = len(hits) if credit_mode == "binary" else sum(iou for _, _, iou in matches)
    penalty = float(params.get("penalty_base", 0.6)) ** abs(len(pred) - len(gt))
    score = penalty * credit / len(gt)
    ok = len(hits) == len(gt) and len(pred) == len(gt)
    return VerifyResult.judged(ok, answer, score=score, matched=len(hits), ious=[round(m[2], 4) for m in matches], threshold=threshold)
