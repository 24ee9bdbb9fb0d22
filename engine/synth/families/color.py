"""Colour or shape of a described object: the easiest family (a few large objects)."""
from __future__ import annotations

import numpy as np

from engine.synth.draw import PALETTE, SHAPES, Obj, canvas, draw_obj, place
from engine.synth.families.base import FamilyItem

SIDE = {1: (0.5, 0.8), 2: (0.32, 0.45), 3: (0.25, 0.36)}  # fraction of the image


def generate(rng: np.random.Generator, size: int, level: int) -> FamilyItem:
    img, d = canvas(size)
    n = level  # 1, 2 or 3 objects
    # Every shape and every colour at most once, so "the circle" / "the red object" is unambiguous.
    shapes = [SHAPES[i] for i in rng.permutation(len(SHAPES))[:n]]
    colors = [list(PALETTE)[i] for i in rng.permutation(len(PALETTE))[:n]]
    boxes = place(rng, size, n, SIDE[level])
    objs = [Obj(s, c, b) for s, c, b in zip(shapes, colors, boxes)]
    for o in objs:
        draw_obj(d, o)
    target = objs[int(rng.integers(n))]
    if level == 1:
        question, answer = "What color is the shape?", target.color
    elif level == 2:
        question, answer = f"What color is the {target.shape}?", target.color
    else:
        question, answer = f"What shape is the {target.color} object?", target.shape
    return FamilyItem(img, question, answer, "exact", {"normalize": True}, {"objects": [o.fact() for o in objs], "target": target.fact()})
