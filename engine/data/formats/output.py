"""What every writer needs: where files go, checked samples, image bytes and image files, JSONL."""
from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from PIL import Image, UnidentifiedImageError

from engine.data.images import ImagePolicy, read_image_bytes
from engine.data.reasons import Reason, SampleError
from engine.data.sample import SPLITS, ImageRef, Sample, validate_sample

_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tiff"}


def output_files(samples: Sequence[Sample], out_path: str | Path, suffix: str) -> list[tuple[Path, list[Sample]]]:
    """Check every sample, then say where each goes: `out_path` ending in `suffix` is one file;
    anything else is a directory with one file per split (trainers take train and validation
    files separately). Checking first means a bad sample stops the export before anything is written."""
    for sample in samples:
        checked(sample)
    out = Path(out_path)
    if out.suffix == suffix:
        return [(out, list(samples))]
    groups = [(out / f"{split}{suffix}", [s for s in samples if s.split == split]) for split in SPLITS]
    return [(path, group) for path, group in groups if group] or [(out / f"train{suffix}", [])]


def checked(sample: Sample) -> Sample:
    """Structural check (split, roles, placeholders...): a bad row would only fail later, in a trainer."""
    try:
        return validate_sample(sample, decode=False)
    except SampleError as err:
        raise SampleError(err.reason, f"sample {sample.id!r}: {err.detail}") from err


def image_bytes(ref: ImageRef, policy: ImagePolicy, sample_id: str) -> bytes:
    try:
        return read_image_bytes(ref.bytes, ref.path, policy)
    except SampleError as err:
        raise SampleError(err.reason, f"sample {sample_id!r}: {err.detail}") from err


def image_extension(data: bytes, sample_id: str) -> str:
    try:
        fmt = Image.open(io.BytesIO(data)).format  # header only, no pixel decoding
    except (UnidentifiedImageError, OSError) as exc:
        raise SampleError(Reason.IMAGE_CORRUPT, f"sample {sample_id!r}: not a recognised image") from exc
    return _EXTENSIONS.get(fmt or "", f".{(fmt or 'img').lower()}")


def save_image(data: bytes, images_dir: Path, sample_id: str, index: int) -> Path:
    """Write one image as `<id>-<index>.<ext>`; ids that are not file-name safe get a hash suffix."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", sample_id)[:120]
    if safe != sample_id:
        safe = f"{safe}-{hashlib.sha1(sample_id.encode()).hexdigest()[:10]}"
    images_dir.mkdir(parents=True, exist_ok=True)
    path = images_dir / f"{safe}-{index}{image_extension(data, sample_id)}"
    path.write_bytes(data)
    return path


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def json_text(obj: Any) -> str:
    """Open-ended dicts as JSON text: one column type for every row."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)
