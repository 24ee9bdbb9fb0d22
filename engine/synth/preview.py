"""Contact sheet: a grid of sample images with question and answer, to check the corpus by eye."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw

from engine.data.sample import IMAGE_PLACEHOLDER, Sample
from engine.synth.config import SynthConfig
from engine.synth.draw import font

CAPTION_LINES = 3
LINE_HEIGHT = 14


def _wrap(d: ImageDraw.ImageDraw, text: str, width: int, fnt) -> list[str]:
    """Greedy word wrap by rendered width (character counts cut words in half)."""
    lines, line = [], ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if line and d.textlength(candidate, font=fnt) > width:
            lines.append(line)
            line = word
        else:
            line = candidate
    return lines + [line] if line else lines


def contact_sheet(samples: Sequence[Sample], path: str | Path, columns: int = 6, scale: int = 2, suffix: str = SynthConfig.prompt_suffix) -> Path:
    """Save a grid of the samples' first images, each captioned with its question and answer."""
    if not samples:
        raise ValueError("contact_sheet: no samples")
    fnt = font(12)
    tiles = []
    for s in samples:
        img = Image.open(io.BytesIO(s.images[0].bytes)).convert("RGB")
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)  # crisp pixels, as the model sees them
        tile = Image.new("RGB", (img.width, img.height + LINE_HEIGHT * (CAPTION_LINES + 1) + 4), "white")
        tile.paste(img, (0, 0))
        d = ImageDraw.Draw(tile)
        # drop the shared answer instruction: it is the same on every tile
        question = s.question.replace(IMAGE_PLACEHOLDER, "").removesuffix(suffix)
        y = img.height + 2
        for line in _wrap(d, question, img.width - 4, fnt)[:CAPTION_LINES]:
            d.text((2, y), line, fill="black", font=fnt)
            y += LINE_HEIGHT
        d.text((2, img.height + 2 + LINE_HEIGHT * CAPTION_LINES), f"= {s.answer}  [{s.task} L{s.meta.get('level')}]", fill=(180, 0, 0), font=fnt)
        tiles.append(tile)
    w, h = tiles[0].size
    columns = min(columns, len(tiles))
    rows = (len(tiles) + columns - 1) // columns
    sheet = Image.new("RGB", (w * columns + columns - 1, h * rows + rows - 1), (160, 160, 160))
    for i, t in enumerate(tiles):
        sheet.paste(t, ((i % columns) * (w + 1), (i // columns) * (h + 1)))  # 1 px grey gutters
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
