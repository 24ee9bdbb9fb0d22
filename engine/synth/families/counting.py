"""How many (coloured) shapes: level raises the count and adds distractors of other colours."""
from __future__ import annotations

import numpy as np

from engine.synth.draw import PALETTE, SHAPES, Obj, canvas, choice, draw_obj, place
from engine.synth.families.base import FamilyItem

MAX_COUNT = {1: 3, 2: 5, 3: 6}


def generate(rng: np.random.Generator, size: int, level: int) -> FamilyItem:
    img, d = canvas(size)
    n = int(rng.integers(1, MAX_COUNT[level] + 1))
    colors = list(PALETTE)
    if level < 3:
        color = choice(rng, colors)
        shape = choice(rng, SHAPES) if level == 1 else None
        objs = [Obj(shape or choice(rng, SHAPES), color if level == 1 else choice(rng, colors), b) for b in place(rng, size, n, (0.16, 0.24))]
        question = "How many shapes are there?"
        answer = n
    else:
        target = choice(rng, colors)
        others = [c for c in colors if c != target]
        n_distract = int(rng.integers(1, 4))
        boxes = place(rng, size, n + n_distract, (0.13, 0.18))
        objs = [Obj(choice(rng, SHAPES), target, b) for b in boxes[:n]]
        objs += [Obj(choice(rng, SHAPES), choice(rng, others), b) for b in boxes[n:]]
        question = f"How many {target} shapes are there?"
        answer = n
    for o in objs:
        draw_obj(d, o)
    return FamilyItem(img, question, str(answer), "numeric", {"tolerance": 0}, {"objects": [o.fact() for o in objs]})
