"""Bar charts: read a single bar (1), find the tallest of three (2), add two of four bars (3)."""
from __future__ import annotations

import numpy as np

from engine.synth.draw import PALETTE, canvas, font
from engine.synth.families.base import FamilyItem

LETTERS = "ABCD"


def generate(rng: np.random.Generator, size: int, level: int) -> FamilyItem:
    img, d = canvas(size)
    n_bars = {1: 1, 2: 3, 3: 4}[level]
    values = [int(v) for v in rng.integers(1, 10, n_bars)]
    if level == 2:  # a unique tallest bar, so the answer is well defined
        while values.count(max(values)) > 1:
            values = [int(v) for v in rng.integers(1, 10, n_bars)]
    left, bottom, top = 14, size - 16, 8
    unit = (bottom - top) / 9
    d.line([(left, top), (left, bottom), (size - 4, bottom)], fill=(60, 60, 60))
    for tick in (0, 3, 6, 9):
        y = bottom - tick * unit
        d.line([(left - 3, y), (left, y)], fill=(60, 60, 60))
        d.text((1, y - 5), str(tick), fill=(60, 60, 60), font=font(9))
    slot = (size - 4 - left) / n_bars
    color = PALETTE[list(PALETTE)[int(rng.integers(len(PALETTE)))]]
    width = slot * float(rng.uniform(0.35, 0.7))  # jittered geometry: few values, many distinct images
    for i, v in enumerate(values):
        x1 = left + i * slot + float(rng.uniform(0.05, 0.95 - width / slot)) * slot
        d.rectangle([x1, bottom - v * unit, x1 + width, bottom - 1], fill=color)
        d.text((x1 + width / 2 - 3, bottom + 2), LETTERS[i], fill=(20, 20, 20), font=font(11))
    facts = {"values": dict(zip(LETTERS, values))}
    if level == 1:
        i = int(rng.integers(n_bars))
        return FamilyItem(img, f"What is the value of bar {LETTERS[i]}?", str(values[i]), "numeric", {"tolerance": 0}, facts, "reasoning")
    if level == 2:
        i = values.index(max(values))
        return FamilyItem(img, "Which bar is the tallest?", LETTERS[i], "exact", {"normalize": True}, facts, "reasoning")
    i, j = (int(k) for k in rng.choice(n_bars, 2, replace=False))
    question = f"What is {LETTERS[i]} + {LETTERS[j]}?"
    return FamilyItem(img, question, str(values[i] + values[j]), "numeric", {"tolerance": 0}, facts, "reasoning")
