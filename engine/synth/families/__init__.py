"""Task families: name -> generate(rng, image_size, level) -> FamilyItem."""
from engine.synth.families import chart, color, counting, grounding, ocr, spatial
from engine.synth.families.base import FamilyItem

GENERATORS = {
    "counting": counting.generate,
    "color": color.generate,
    "grounding": grounding.generate,
    "ocr": ocr.generate,
    "chart": chart.generate,
    "spatial": spatial.generate,
}

__all__ = ["FamilyItem", "GENERATORS"]
