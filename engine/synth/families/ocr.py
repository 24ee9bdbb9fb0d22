"""Read rendered digits: level adds characters, shrinks the font and adds noise."""
from __future__ import annotations

import numpy as np

from engine.synth.draw import PALETTE, add_noise, canvas, font
from engine.synth.families.base import FamilyItem

LENGTH = {1: (2, 2), 2: (3, 4), 3: (4, 5)}
FONT_SIZE = {1: (30, 36), 2: (24, 30), 3: (18, 24)}
INK = ("black", "blue", "red", "purple")


def generate(rng: np.random.Generator, size: int, level: int) -> FamilyItem:
    img, d = canvas(size)
    length = int(rng.integers(LENGTH[level][0], LENGTH[level][1] + 1))
    text = "".join(str(int(rng.integers(10))) for _ in range(length))
    fnt = font(int(rng.integers(FONT_SIZE[level][0], FONT_SIZE[level][1] + 1)))
    x1, y1, x2, y2 = d.textbbox((0, 0), text, font=fnt)
    w, h = x2 - x1, y2 - y1
    x = int(rng.integers(2, max(3, size - w - 2))) - x1
    y = int(rng.integers(2, max(3, size - h - 2))) - y1
    ink = INK[int(rng.integers(len(INK)))]
    d.text((x, y), text, fill=(20, 20, 20) if ink == "black" else PALETTE[ink], font=fnt)
    if level == 3:
        img = add_noise(img, rng, 18.0)
    return FamilyItem(img, "What number is written?", text, "ocr", {"max_distance": 0.0}, {"text": text, "ink": ink})
