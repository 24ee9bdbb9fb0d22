"""Read rendered text: level adds characters (letters at 3), shrinks the font and adds noise."""
from __future__ import annotations

import numpy as np

from engine.synth.draw import PALETTE, add_noise, canvas, font
from engine.synth.families.base import FamilyItem

LENGTH = {1: (1, 1), 2: (2, 3), 3: (4, 5)}  # one large glyph first: shape recognition before reading
FONT_SIZE = {1: (44, 60), 2: (28, 36), 3: (18, 24)}
NOISE = {1: 0.0, 2: 4.0, 3: 10.0}  # grey-level noise std: light, so the text stays legible
DIGITS = "0123456789"
# Letters that the bundled font does not confuse with digits (no O/0, I/1, S/5, B/8, Z/2, Q).
LETTERS = "ACDEFGHJKLMNPRTUVWXY"
INK = ("black", "blue", "red", "purple")


def _text(rng: np.random.Generator, level: int) -> str:
    length = int(rng.integers(LENGTH[level][0], LENGTH[level][1] + 1))
    alphabet = DIGITS + LETTERS if level == 3 and rng.random() < 0.5 else DIGITS
    return "".join(alphabet[int(rng.integers(len(alphabet)))] for _ in range(length))


def generate(rng: np.random.Generator, size: int, level: int) -> FamilyItem:
    img, d = canvas(size)
    text = _text(rng, level)
    font_size = int(rng.integers(FONT_SIZE[level][0], FONT_SIZE[level][1] + 1))
    fnt = font(font_size)
    x1, y1, x2, y2 = d.textbbox((0, 0), text, font=fnt)
    w, h = x2 - x1, y2 - y1
    x = int(rng.integers(2, max(3, size - w - 2))) - x1
    y = int(rng.integers(2, max(3, size - h - 2))) - y1
    ink = INK[int(rng.integers(len(INK)))]
    d.text((x, y), text, fill=(20, 20, 20) if ink == "black" else PALETTE[ink], font=fnt)
    if NOISE[level]:
        img = add_noise(img, rng, NOISE[level])
    facts = {"text": text, "ink": ink, "font_size": font_size, "box": [x + x1, y + y1, x + x2, y + y2]}
    return FamilyItem(img, "What text is shown?", text, "ocr", {"max_distance": 0.0}, facts)
