"""Colour or shape of objects, on a ladder the tiny VLM climbs in order:
level 1 one large object, level 2 several objects of one colour (both global properties),
level 3 several objects of different colours, asking about one of them (attribute binding)."""
from __future__ import annotations

import numpy as np

from engine.synth.draw import PALETTE, SHAPES, Obj, canvas, choice, draw_obj, place
from engine.synth.families.base import FamilyItem

SIDE = {1: (0.5, 0.8), 2: (0.28, 0.4), 3: (0.28, 0.4)}  # fraction of the image


def generate(rng: np.random.Generator, size: int, level: int) -> FamilyItem:
    img, d = canvas(size)
    n = 1 if level == 1 else int(rng.integers(2, 4))
    shapes = [SHAPES[i] for i in rng.permutation(len(SHAPES))[:n]]
    if level < 3:
        colors = [choice(rng, list(PALETTE))] * n
    else:
        # every shape and colour at most once, so "the circle" / "the red object" is unambiguous
        colors = [list(PALETTE)[i] for i in rng.permutation(len(PALETTE))[:n]]
    objs = [Obj(s, c, b) for s, c, b in zip(shapes, colors, place(rng, size, n, SIDE[level]))]
    for o in objs:
        draw_obj(d, o)
    target = objs[int(rng.integers(n))]
    if level == 1:
        question, answer = "What color is the shape?", target.color
    elif level == 2:
        question, answer = "What color are the shapes?", target.color
    elif rng.random() < 0.5:
        question, answer = f"What color is the {target.shape}?", target.color
    else:
        question, answer = f"What shape is the {target.color} object?", target.shape
    return FamilyItem(img, question, answer, "exact", {"normalize": True}, {"objects": [o.fact() for o in objs], "target": target.fact()})
