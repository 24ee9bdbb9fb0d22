"""Wrong answers for Curr-ReFT judge and choice variants, each checked by the source's own verifier.

Candidates come from the answer pool (other samples of the same split and task) or from perturbing
the truth: numbers step away from it, OCR text gets character edits, label sets swap a label, boxes
shift or rescale. A candidate is kept only when the source verifier parses it and rejects it against
the truth and against every candidate kept before it. So a distractor is never accepted, not even by
verifiers with a tolerance, an IoU bar or an edit-distance bar, and no two options are one answer.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import string
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from engine.data.response import format_response
from engine.data.sample import Sample
from engine.verifiers import verify
from engine.verifiers.boxes import BoxError, box_scales, frame_size, parse_boxes
from engine.verifiers.extract import normalize_text
from engine.verifiers.text import numeric_bound, parse_count, parse_number, parse_yes_no

# Verifiers whose answers can be drawn from a pool or perturbed, and judged one against another.
# "choice" is absent on purpose: a multiple-choice source is already past the open stage.
SUPPORTED_VERIFIERS = frozenset({"exact", "yesno", "numeric", "count", "ocr", "labels", "iou", "detection", "math"})
NUMBER_VERIFIERS = frozenset({"numeric", "count", "math"})
MAX_CANDIDATES = 200  # candidates judged per source before giving up (bounds the verifier calls)


@dataclass(frozen=True)
class Distractor:
    text: str
    method: str  # pool (same question stem) | task_pool (same task) | perturb | complement (yes <-> no)
    from_id: str = ""  # the sample whose answer this is, for pool methods; "" for made-up answers


@dataclass(frozen=True)
class PoolEntry:
    answer: str
    sample_id: str


def seeded_rng(seed: int, *parts: str) -> np.random.Generator:
    """Per-sample RNG from a stable hash: a variant does not depend on which other samples came first."""
    digest = hashlib.sha256("|".join(["gradus-reformulate", str(seed), *parts]).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


# ----- the answer pool: same split, same task, same verifier -------------------------------------

class AnswerPool:
    """Distinct answers per (split, task, verifier), grouped by question stem.

    The stem ("what color", "what shape") keeps distractors plausible: a colour question draws
    colours, not shape names. Lookups never leave the asking sample's split.
    """

    def __init__(self, samples: Sequence[Sample], stems: Mapping[str, str]):
        self._entries: dict[tuple, list[tuple[str, PoolEntry]]] = defaultdict(list)  # group -> (stem, entry)
        self._labels: dict[tuple, list[PoolEntry]] = defaultdict(list)
        seen: set[tuple] = set()
        for s in sorted(samples, key=lambda x: x.id):  # sorted: the entry kept for a repeated answer is stable
            group = _group(s)
            stem = stems.get(s.id, "")
            if (group, stem, s.answer) not in seen:
                seen.add((group, stem, s.answer))
                self._entries[group].append((stem, PoolEntry(s.answer, s.id)))
            if s.verifier == "labels":
                for label in split_labels(s.answer)[0]:
                    key = (group, "label", normalize_text(label))
                    if key not in seen:
                        seen.add(key)
                        self._labels[group].append(PoolEntry(label, s.id))

    def near(self, sample: Sample, stem: str) -> list[PoolEntry]:
        """Other samples' answers to questions with the same stem."""
        return [e for st, e in self._entries[_group(sample)] if st == stem and e.sample_id != sample.id]

    def wide(self, sample: Sample, stem: str) -> list[PoolEntry]:
        """Other samples' answers in the same task, under other stems (the fallback)."""
        return [e for st, e in self._entries[_group(sample)] if st != stem and e.sample_id != sample.id]

    def labels(self, sample: Sample) -> list[PoolEntry]:
        """Single labels seen in other samples' label sets (multi-select options)."""
        return [e for e in self._labels[_group(sample)] if e.sample_id != sample.id]


def _group(sample: Sample) -> tuple[str, str, str]:
    return (sample.split, sample.task, sample.verifier)


# ----- the check every candidate passes --------------------------------------------------------

def lowest_bar(params: dict[str, Any]) -> dict[str, Any]:
    """Params with a threshold schedule pinned at its lowest value: a distractor fails at every point of training."""
    threshold = params.get("threshold")
    if isinstance(threshold, dict) and isinstance(threshold.get("schedule"), list) and threshold["schedule"]:
        return {**params, "threshold": min(float(t) for _, t in threshold["schedule"])}
    return params


def answer_passes(verifier: str, params: dict[str, Any], truth: str, answer: str) -> bool:
    """Would the model's answer, written with the training template, be accepted?"""
    return verify(verifier, format_response(answer), truth, params).passed


def judged_wrong(verifier: str, params: dict[str, Any], truth: str, answer: str) -> bool:
    """The verifier parses `answer` and rejects it against `truth`. An unparseable answer is not a
    plausible distractor, so it does not count as wrong here."""
    result = verify(verifier, format_response(answer), truth, lowest_bar(params))
    return not result.reason and not result.passed


# ----- perturbations of the truth --------------------------------------------------------------

def number_variants(truth: str, verifier: str, params: dict[str, Any], rng: np.random.Generator) -> list[str]:
    """Numbers stepping away from the truth, nearest first; the step clears the verifier's tolerance."""
    value = parse_count(truth) if verifier == "count" else parse_number(truth)
    if value is None:
        return []
    value = float(value)
    written = re.search(r"\.(\d+)", truth)
    decimals = len(written.group(1)) if written else (0 if value.is_integer() else 2)
    bound = numeric_bound(value, params)
    if decimals == 0:
        step = math.floor(bound) + 1.0
    else:
        step = max(abs(value) * 0.1, 10.0 ** -decimals, 2 * bound)
    percent = "%" if truth.strip().endswith("%") else ""
    out = []
    for k in range(1, 5):
        for sign in rng.permutation([-1, 1]):
            moved = value + int(sign) * k * step
            if verifier == "count" and moved < 0:
                continue
            out.append(f"{moved:.{decimals}f}{percent}")
    return out


_ALPHABETS = (string.digits, string.ascii_uppercase, string.ascii_lowercase)


def _alphabet(char: str) -> str:
    return next((a for a in _ALPHABETS if char in a), string.digits + string.ascii_uppercase)


def _one_edit(text: str, rng: np.random.Generator) -> str:
    """One OCR-style slip: a character read as another of its kind, two swapped, one dropped or added."""
    i = int(rng.integers(len(text)))
    op = int(rng.integers(4)) if len(text) > 1 else int(rng.choice([0, 3]))
    if op == 1 and i + 1 < len(text) and text[i] != text[i + 1]:
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    if op == 2:
        return text[:i] + text[i + 1 :]
    alphabet = _alphabet(text[i])
    if op == 3:
        return text[: i + 1] + alphabet[int(rng.integers(len(alphabet)))] + text[i + 1 :]
    others = alphabet.replace(text[i], "")
    return text[:i] + others[int(rng.integers(len(others)))] + text[i + 1 :]


def text_edits(truth: str, rng: np.random.Generator, tries_per_depth: int = 4) -> list[str]:
    """Misreadings of the truth with 1, 2, then 3 edits (deeper edits clear larger distance bars)."""
    if not truth:
        return []
    out = []
    for depth in (1, 2, 3):
        for _ in range(tries_per_depth):
            text = truth
            for _ in range(depth):
                text = _one_edit(text, rng) or text
            out.append(text)
    return out


def split_labels(answer: str) -> tuple[list[str], bool]:
    """Labels in written order (duplicates dropped) and whether the answer was a JSON list."""
    text = answer.strip()
    items: list[str] | None = None
    if text.startswith("["):
        try:
            loaded = json.loads(text)
            items = [str(x) for x in loaded] if isinstance(loaded, list) else None
        except (json.JSONDecodeError, RecursionError):
            items = None
    as_json = items is not None
    if items is None:
        items = re.split(r"[,;\n]", text)
    out, seen = [], set()
    for item in (i.strip() for i in items):
        if item and normalize_text(item) not in seen:
            seen.add(normalize_text(item))
            out.append(item)
    return out, as_json


def join_labels(labels: Sequence[str], as_json: bool) -> str:
    return json.dumps(list(labels)) if as_json else ", ".join(labels)


def label_edits(truth: str, vocabulary: Sequence[PoolEntry], rng: np.random.Generator, limit: int = 6) -> list[str]:
    """Label sets one step from the truth: a label swapped for a pool label, one added, one dropped."""
    labels, as_json = split_labels(truth)
    if not labels:
        return []
    have = {normalize_text(x) for x in labels}
    spare = [vocabulary[i].answer for i in rng.permutation(len(vocabulary)) if normalize_text(vocabulary[i].answer) not in have][:limit]
    out = []
    for new in spare:
        i = int(rng.integers(len(labels)))
        out.append(join_labels(labels[:i] + [new] + labels[i + 1 :], as_json))
        out.append(join_labels(labels + [new], as_json))
    if len(labels) > 1:
        out += [join_labels(labels[:i] + labels[i + 1 :], as_json) for i in range(len(labels))]
    return [out[i] for i in rng.permutation(len(out))]


def box_frame(coords: Sequence[Sequence[float]], params: dict[str, Any]) -> tuple[float, float]:
    """Width and height of the frame the truth's coordinates live in, by the verifier's own scale
    rule (box_scales, frame_size): 0-1, 0-1000, pixels of `image_size` or of the resized image."""
    return frame_size(box_scales(params, [list(c) for c in coords])[0], params)


def moved_boxes(box: Sequence[float], frame: tuple[float, float], rng: np.random.Generator) -> list[list[float]]:
    """The box shifted by most of its size in 8 directions, shrunk and grown: near misses inside the frame."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    W, H = frame
    out = []
    for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1)):
        fx, fy = float(rng.uniform(0.6, 1.1)), float(rng.uniform(0.6, 1.1))
        nx = min(max(x1 + dx * fx * w, 0.0), max(W - w, 0.0))
        ny = min(max(y1 + dy * fy * h, 0.0), max(H - h, 0.0))
        out.append([nx, ny, nx + w, ny + h])
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    for factor in (0.45, 2.0):
        hw, hh = w * factor / 2, h * factor / 2
        out.append([max(cx - hw, 0.0), max(cy - hh, 0.0), min(cx + hw, W), min(cy + hh, H)])
    return [out[i] for i in rng.permutation(len(out))]


def _box_text(coords: Sequence[float], integral: bool) -> list[float | int] | None:
    values = [int(round(v)) for v in coords] if integral else [round(float(v), 4) for v in coords]
    return values if values[2] > values[0] and values[3] > values[1] else None


def box_variants(truth: str, verifier: str, params: dict[str, Any], rng: np.random.Generator) -> list[str]:
    """The truth with one box moved off target (or, for several boxes, one dropped), in the truth's layout."""
    try:
        raw = parse_boxes(truth)
    except BoxError:
        return []
    coords = [c for c, _ in raw]
    labels = [label for _, label in raw]
    if not coords:
        return []
    try:
        frame = box_frame(coords, params)
    except (BoxError, ValueError):  # a truth the verifier itself cannot place: no box distractors
        return []
    integral = all(float(v).is_integer() for c in coords for v in c)
    as_dicts = "bbox_2d" in truth or any(label is not None for label in labels)

    def write(boxes: list[list[float | int]], kept_labels: list[str | None]) -> str:
        if verifier == "iou" and len(boxes) == 1:
            return "[" + ", ".join(str(v) for v in boxes[0]) + "]"
        if as_dicts:
            return json.dumps([{"bbox_2d": b, **({"label": lab} if lab is not None else {})} for b, lab in zip(boxes, kept_labels)])
        return json.dumps(boxes)

    exact = [_box_text(c, integral) for c in coords]
    out = []
    for i in (int(k) for k in rng.permutation(len(coords))):
        for moved in moved_boxes(coords[i], frame, rng):
            new = _box_text(moved, integral)
            if new is not None and None not in exact:
                out.append(write(exact[:i] + [new] + exact[i + 1 :], labels))
    if len(coords) > 1 and None not in exact:
        out += [write(exact[:i] + exact[i + 1 :], labels[:i] + labels[i + 1 :]) for i in range(len(coords))]
    return out


def perturbations(sample: Sample, vocabulary: Sequence[PoolEntry], rng: np.random.Generator) -> list[str]:
    """Made-up wrong answers for the source's verifier ([] where only the pool can help, e.g. exact text)."""
    verifier, truth, params = sample.verifier, sample.answer, sample.verifier_params
    if verifier in ("iou", "detection"):
        return box_variants(truth, verifier, params, rng)
    if verifier == "labels":
        return label_edits(truth, vocabulary, rng)
    if verifier == "ocr":
        return text_edits(truth, rng)
    if verifier in NUMBER_VERIFIERS:
        return number_variants(truth, verifier, params, rng)
    return []


# ----- the search ------------------------------------------------------------------------------

def _alternate(first: list[Distractor], second: list[Distractor], rng: np.random.Generator) -> Iterator[Distractor]:
    """Interleave pool draws and perturbations (both are plausible; neither should crowd out the other)."""
    lists = [first, second] if rng.random() < 0.5 else [second, first]
    for i in range(max(len(first), len(second))):
        for items in lists:
            if i < len(items):
                yield items[i]


def candidates(sample: Sample, near: Sequence[PoolEntry], vocabulary: Sequence[PoolEntry], rng: np.random.Generator) -> Iterator[Distractor]:
    """Wrong-answer candidates in a seeded order: pool draws (same stem) interleaved with perturbations.
    A yes/no truth has one wrong answer, its complement, and nothing else is plausible."""
    flipped = parse_yes_no(sample.answer)
    if flipped is not None:
        yield Distractor("no" if flipped == "yes" else "yes", "complement")
        return
    drawn = [Distractor(near[i].answer, "pool", near[i].sample_id) for i in rng.permutation(len(near))]
    made = [Distractor(text, "perturb") for text in perturbations(sample, vocabulary, rng)]
    yield from _alternate(drawn, made, rng)


def find_distractors(sample: Sample, pool: AnswerPool, stem: str, want: int, rng: np.random.Generator, at_least: int = 1,
                     max_candidates: int = MAX_CANDIDATES) -> list[Distractor]:
    """Up to `want` wrong answers, each rejected by the verifier against the truth and against each other.

    The task-wide pool (answers to questions with another stem: less plausible) is drawn from only
    while fewer than `at_least` were found."""
    kept: list[Distractor] = []
    verifier, params = sample.verifier, sample.verifier_params
    vocabulary = pool.labels(sample) if verifier == "labels" else []
    wide = pool.wide(sample, stem) if parse_yes_no(sample.answer) is None else []
    fallback = (Distractor(wide[i].answer, "task_pool", wide[i].sample_id) for i in rng.permutation(len(wide)))
    tried = 0
    for source, limit in ((candidates(sample, pool.near(sample, stem), vocabulary, rng), want), (fallback, at_least)):
        for cand in source:
            if len(kept) >= limit or tried >= max_candidates:
                break
            tried += 1
            if not cand.text.strip() or any(cand.text == k.text for k in kept):
                continue
            if judged_wrong(verifier, params, sample.answer, cand.text) and all(judged_wrong(verifier, params, k.text, cand.text) for k in kept):
                kept.append(cand)
    return kept


def find_wrong_labels(sample: Sample, pool: AnswerPool, want: int, rng: np.random.Generator) -> list[Distractor]:
    """Single labels outside the truth's label set, for multi-select options (each rejected by the verifier)."""
    truth = {normalize_text(x) for x in split_labels(sample.answer)[0]}
    vocabulary = pool.labels(sample)
    kept: list[Distractor] = []
    for i in rng.permutation(len(vocabulary)):
        if len(kept) >= want:
            break
        entry = vocabulary[i]
        norm = normalize_text(entry.answer)
        if norm in truth or any(norm == normalize_text(k.text) for k in kept):
            continue
        if judged_wrong("labels", sample.verifier_params, sample.answer, entry.answer):
            kept.append(Distractor(entry.answer, "pool", entry.sample_id))
    return kept
