"""Contact sheet: a grid of sample images with question and answer, to check the corpus by eye."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw

from engine.data.sample import IMAGE_PLACEHOLDER, Sample
from engine.synth.draw import font


def contact_sheet(samples: Sequence[Sample], path: str | Path, columns: int = 6, scale: int = 2) -> Path:
    tiles = []
    for s in samples:
        img = Image.open(io.BytesIO(s.images[0].bytes)).convert("RGB")
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
        tile = Image.new("RGB", (img.width, img.height + 44), "white")
        tile.paste(img, (0, 0))
        d = ImageDraw.Draw(tile)
        question = s.question.replace(IMAGE_PLACEHOLDER, "").split(" Put the final")[0]
        d.text((2, img.height + 2), question[:40], fill="black", font=font(10))
        d.text((2, img.height + 15), question[40:80], fill="black", font=font(10))
        d.text((2, img.height + 29), f"= {s.answer}  [{s.task} L{s.meta.get('level')}]", fill=(180, 0, 0), font=font(10))
        tiles.append(tile)
    w, h = tiles[0].size
    rows = (len(tiles) + columns - 1) // columns
    sheet = Image.new("RGB", (w * columns, h * rows), (200, 200, 200))
    for i, t in enumerate(tiles):
        sheet.paste(t, ((i % columns) * w, (i // columns) * h))
    path = Path(path)
    sheet.save(path)
    return path
