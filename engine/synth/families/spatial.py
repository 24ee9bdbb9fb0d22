"""Relations between two described objects: yes/no (1), which side (2), with distractors (3)."""
from __future__ import annotations

import numpy as np

from engine.synth.draw import canvas, distinct_objects, draw_obj, place
from engine.synth.families.base import FamilyItem

RELATIONS = ("left", "right", "above", "below")
PHRASE = {"left": "left of", "right": "right of", "above": "above", "below": "below"}
# Minimum centre offset along the answer's axis: objects get closer as the level rises.
MIN_GAP = {1: 30, 2: 22, 3: 16}
N_OBJECTS = {1: 2, 2: 2, 3: 4}


def _relation(a, b, min_gap: int) -> str | None:
    """The dominant relation of a to b, or None when the layout is ambiguous."""
    dx = a.center[0] - b.center[0]
    dy = a.center[1] - b.center[1]
    if abs(dx) > 2 * abs(dy) and abs(dx) > min_gap:
        return "left" if dx < 0 else "right"
    if abs(dy) > 2 * abs(dx) and abs(dy) > min_gap:
        return "above" if dy < 0 else "below"
    return None


def _false_relations(a, b) -> list[str]:
    """Relations that are literally false, so a "no" never contradicts a secondary offset."""
    dx = a.center[0] - b.center[0]
    dy = a.center[1] - b.center[1]
    return ["right" if dx <= 0 else "left", "below" if dy <= 0 else "above"]


def generate(rng: np.random.Generator, size: int, level: int) -> FamilyItem:
    for _ in range(200):
        objs = distinct_objects(rng, place(rng, size, N_OBJECTS[level], (0.2, 0.29)))
        a, b = objs[0], objs[1]
        rel = _relation(a, b, MIN_GAP[level])
        if rel is None:
            continue
        img, d = canvas(size)
        for o in objs:
            draw_obj(d, o)
        facts = {"objects": [o.fact() for o in objs], "relation": rel, "subject": a.fact(), "reference": b.fact()}
        da, db = f"{a.color} {a.shape}", f"{b.color} {b.shape}"
        if level == 1:
            # Balanced yes/no: half ask the true relation, half one that is plainly false.
            asked = rel if rng.random() < 0.5 else str(rng.choice(_false_relations(a, b)))
            answer = "yes" if asked == rel else "no"
            return FamilyItem(img, f"Is the {da} {PHRASE[asked]} the {db}?", answer, "exact", {"normalize": True}, facts)
        return FamilyItem(img, f"Where is the {da} relative to the {db}?", rel, "exact", {"normalize": True}, facts)
    raise RuntimeError("spatial: no unambiguous layout in 200 tries")
