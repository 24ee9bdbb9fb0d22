"""Box of a described object, in pixel coordinates: level adds distractors and shrinks objects."""
from __future__ import annotations

import numpy as np

from engine.synth.draw import canvas, distinct_objects, draw_obj, place
from engine.synth.families.base import FamilyItem

LAYOUT = {1: (1, (0.36, 0.57)), 2: (3, (0.25, 0.36)), 3: (5, (0.14, 0.25))}  # (objects, side as a fraction of the image)


def generate(rng: np.random.Generator, size: int, level: int) -> FamilyItem:
    img, d = canvas(size)
    n, side = LAYOUT[level]
    objs = distinct_objects(rng, place(rng, size, n, side))
    for o in objs:
        draw_obj(d, o)
    target = objs[int(rng.integers(n))]
    answer = "[" + ", ".join(str(v) for v in target.box) + "]"
    return FamilyItem(
        img,
        f"Where is the {target.color} {target.shape}? Give the box.",
        answer,
        "iou",
        {"threshold": 0.5, "image_size": [size, size]},
        {"objects": [o.fact() for o in objs], "target": target.fact()},
    )
