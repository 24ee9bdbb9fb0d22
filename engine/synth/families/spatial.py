"""Relations between two described objects: yes/no (1), which side (2), with distractors (3)."""
from __future__ import annotations

import numpy as np

from engine.synth.draw import canvas, distinct_objects, draw_obj, place
from engine.synth.families.base import FamilyItem

RELATIONS = ("left", "right", "above", "below")


def _relation(a, b) -> str | None:
    """The dominant relation of a to b, or None when the layout is ambiguous."""
    dx = a.center[0] - b.center[0]
    dy = a.center[1] - b.center[1]
    if abs(dx) > 1.5 * abs(dy) and abs(dx) > 16:
        return "left" if dx < 0 else "right"
    if abs(dy) > 1.5 * abs(dx) and abs(dy) > 16:
        return "above" if dy < 0 else "below"
    return None


def generate(rng: np.random.Generator, size: int, level: int) -> FamilyItem:
    for _ in range(200):
        img, d = canvas(size)
        n = 2 if level < 3 else 4
        objs = distinct_objects(rng, place(rng, size, n, (16, 24)))
        a, b = objs[0], objs[1]
        rel = _relation(a, b)
        if rel is None:
            continue
        for o in objs:
            draw_obj(d, o)
        facts = {"objects": [o.fact() for o in objs], "relation": rel}
        da, db = f"{a.color} {a.shape}", f"{b.color} {b.shape}"
        if level == 1:
            asked = rel if rng.random() < 0.5 else str(rng.choice([r for r in RELATIONS if r != rel]))
            phrase = {"left": "left of", "right": "right of", "above": "above", "below": "below"}[asked]
            answer = "yes" if asked == rel else "no"
            return FamilyItem(img, f"Is the {da} {phrase} the {db}?", answer, "exact", {"normalize": True}, facts)
        return FamilyItem(img, f"Where is the {da} relative to the {db}?", rel, "exact", {"normalize": True}, facts)
    raise RuntimeError("spatial: no unambiguous layout in 200 tries")
