"""Box answers: parsing, coordinate scales, IoU, greedy matching; the Curr-ReFT and V-Triune verifiers.

Boxes arrive as `[{'bbox_2d': [x1, y1, x2, y2], 'label': ...}, ...]`, a bare `[x1, y1, x2, y2]`, a
list of bare boxes, or one dict. The coordinate frame of each side is a property of the data
(`scale`, or `gt_scale` / `pred_scale`): pixels of the original image, pixels of the image as the
Qwen2.5-VL processor resized it, 0-1, or 0-1000 (Qwen2-VL). Both sides are brought to 0-1 of the
original image before IoU. The answer being graded never chooses its own frame.
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
from engine.vision_grid import VisionGrid

SCALES = ("auto", "pixel", "resized", "unit", "thousand")
MAX_BOXES = 100  # a completion listing more boxes than this is not judged (bounds the matching cost)
RESIZE_FACTOR = 28  # Qwen2.5-VL: 14 px patches merged 2x2; resized sides are multiples of this


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
    """The truth's frame. `auto` reads it off the truth alone: <= 1 -> unit; inside `image_size`
    -> pixel; <= 1000 -> thousand. Never call this on a prediction (see box_scales)."""
    _check_scale(scale)
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


def box_scales(params: dict[str, Any], truth_coords: list[list[float]]) -> tuple[str, str]:
    """(truth frame, answer frame). `scale` (default auto) sets both; `gt_scale` / `pred_scale`
    override one side. An answer frame of `auto` is the truth's resolved frame: a prediction is
    read in the frame the dataset states, whatever numbers it holds."""
    both = params.get("scale", "auto")
    gt = resolve_scale(params.get("gt_scale", both), truth_coords, params.get("image_size"))
    pred = params.get("pred_scale", both)
    _check_scale(pred)
    return gt, gt if pred == "auto" else pred


def _check_scale(scale: Any) -> None:
    if scale not in SCALES:
        raise ValueError(f"box scale {scale!r} not one of {SCALES}")


def frame_size(scale: str, params: dict[str, Any]) -> tuple[float, float]:
    """Width and height of a frame in its own units: 1 (unit), 1000 (thousand), the image's pixels
    (pixel), or the pixels of the image after the processor's resize (resized)."""
    if scale == "unit":
        return 1.0, 1.0
    if scale == "thousand":
        return 1000.0, 1000.0
    width, height = _image_size(params, scale)
    if scale == "pixel":
        return width, height
    return resized_size(width, height, params)


def _image_size(params: dict[str, Any], scale: str) -> tuple[float, float]:
    size = params.get("image_size")
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, (int, float)) and v > 0 for v in size)):
        raise ValueError(f"{scale}-scale boxes need image_size [width, height] of the original image in the verifier params, got {size!r}")
    return float(size[0]), float(size[1])


def resized_size(width: float, height: float, params: dict[str, Any]) -> tuple[float, float]:
    """The size Qwen2.5-VL's processor resizes a width x height image to (the engines' own
    smart_resize, as PISM's patch grid uses it: sides multiples of `resize_factor`, pixels within
    [min_pixels, max_pixels]). The bounds are the processor's own settings, so they are required, never guessed."""
    missing = [k for k in ("min_pixels", "max_pixels") if not params.get(k)]
    if missing:
        raise ValueError(f"resized-scale boxes need the processor's {' and '.join(missing)} in the verifier params")
    grid = VisionGrid(int(params.get("resize_factor", RESIZE_FACTOR)), int(params["min_pixels"]), int(params["max_pixels"]))
    h, w = grid.resized(int(height), int(width))
    return float(w), float(h)


def to_unit_boxes(raw: list[tuple[list[float], str | None]], frame: tuple[float, float], swapped: str = "reject") -> list[Box]:
    """Boxes in 0-1 coordinates of a frame (width, height). Swapped corners are rejected
    (`swapped: reject`) or reordered (`fix`); coordinates outside the frame are clipped to it."""
    sx, sy = frame
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


def _parse(text: str, params: dict[str, Any]) -> list[tuple[list[float], str | None]]:
    return parse_boxes(text, int(params.get("max_boxes", MAX_BOXES)))


def _truth_boxes(truth: str, params: dict[str, Any]) -> tuple[list[Box], str]:
    """The truth's boxes in 0-1, and the frame the answer is to be read in."""
    try:
        raw = _parse(truth, params)
        gt_scale, pred_scale = box_scales(params, [c for c, _ in raw])
        return to_unit_boxes(raw, frame_size(gt_scale, params), params.get("swapped", "reject")), pred_scale
    except BoxError as exc:
        raise GroundTruthError(f"box truth {truth[:80]!r}: {exc.reason}") from None


def _answer_boxes(answer: str, pred_scale: str, params: dict[str, Any]) -> list[Box] | VerifyResult:
    frame = frame_size(pred_scale, params)  # a missing image size is a config error, raised
    try:
        return to_unit_boxes(_parse(answer, params), frame, params.get("swapped", "reject"))
    except BoxError as exc:
        return VerifyResult.unparsed(exc.reason, answer)


def verify_iou(output: str, truth: str, params: dict[str, Any]) -> VerifyResult:
    """Curr-ReFT single-box grounding: score = IoU, pass = IoU >= threshold (0.5), never 'any overlap'."""
    answer = extract_or_fail(output, params)
    if isinstance(answer, VerifyResult):
        return answer
    gt, pred_scale = _truth_boxes(truth, params)
    if len(gt) != 1:
        raise GroundTruthError(f"iou truth must be one box, got {len(gt)}")
    pred = _answer_boxes(answer, pred_scale, params)
    if isinstance(pred, VerifyResult):
        return pred
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
    gt, pred_scale = _truth_boxes(truth, params)
    pred = _answer_boxes(answer, pred_scale, params)
    if isinstance(pred, VerifyResult):
        return pred
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
