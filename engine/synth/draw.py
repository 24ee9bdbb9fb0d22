"""Drawing helpers shared by the task families: palette, shapes, placement, text."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (245, 245, 240)
PALETTE = {
    "red": (220, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 70, 220),
    "yellow": (225, 190, 0),
    "purple": (140, 50, 170),
    "orange": (240, 130, 20),
}
SHAPES = ("circle", "square", "triangle")


@dataclass(frozen=True)
class Obj:
    shape: str
    color: str
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels, inclusive-exclusive

    @property
    def center(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)

    def fact(self) -> dict:
        return {"shape": self.shape, "color": self.color, "box": list(self.box)}


def canvas(size: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    img = Image.new("RGB", (size, size), BACKGROUND)
    return img, ImageDraw.Draw(img)


def draw_obj(d: ImageDraw.ImageDraw, obj: Obj) -> None:
    x1, y1, x2, y2 = obj.box
    fill = PALETTE[obj.color]
    if obj.shape == "circle":
        d.ellipse([x1, y1, x2 - 1, y2 - 1], fill=fill)
    elif obj.shape == "square":
        d.rectangle([x1, y1, x2 - 1, y2 - 1], fill=fill)
    else:
        d.polygon([((x1 + x2 - 1) / 2, y1), (x1, y2 - 1), (x2 - 1, y2 - 1)], fill=fill)


def place(rng: np.random.Generator, size: int, n: int, side: tuple[float, float], gap: int = 3, tries: int = 400) -> list[tuple[int, int, int, int]]:
    """n non-overlapping square boxes with sides between side[0] and side[1] times the image size.

    Sizes are relative so a tiny VLM sees objects spanning whole 28 px visual tokens: small
    objects on a blank canvas are diluted among background tokens and barely learnable.
    """
    lo, hi = max(4, int(side[0] * size)), max(4, int(side[1] * size))
    for _ in range(20):  # a crowded early layout can leave no room: start the layout over
        boxes: list[tuple[int, int, int, int]] = []
        for _ in range(tries):
            if len(boxes) == n:
                return boxes
            s = int(rng.integers(lo, hi + 1))
            x, y = int(rng.integers(1, size - s)), int(rng.integers(1, size - s))
            box = (x, y, x + s, y + s)
            if all(box[2] + gap <= b[0] or b[2] + gap <= box[0] or box[3] + gap <= b[1] or b[3] + gap <= box[1] for b in boxes):
                boxes.append(box)
        if len(boxes) == n:
            return boxes
    raise RuntimeError(f"could not place {n} objects of side {side} on {size}px")  # a config bug, not data


def distinct_objects(rng: np.random.Generator, boxes) -> list[Obj]:
    """Objects on the given boxes with (shape, color) pairs unique, so descriptions are unambiguous."""
    pairs = [(s, c) for s in SHAPES for c in PALETTE]
    order = rng.permutation(len(pairs))
    return [Obj(pairs[order[i]][0], pairs[order[i]][1], tuple(b)) for i, b in enumerate(boxes)]


def choice(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


@lru_cache(maxsize=64)
def font(size: int) -> ImageFont.FreeTypeFont:
    # Pillow bundles a scalable default font: no font files, no downloads.
    return ImageFont.load_default(size=size)


def add_noise(img: Image.Image, rng: np.random.Generator, amount: float) -> Image.Image:
    """Grey-level (same on every channel) Gaussian noise: it blurs glyph edges without adding colours."""
    arr = np.asarray(img).astype(np.int16)
    arr = arr + np.rint(rng.normal(0, amount, arr.shape[:2] + (1,))).astype(np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
