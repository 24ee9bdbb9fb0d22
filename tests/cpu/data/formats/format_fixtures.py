"""Builders for test inputs that look like the real formats (importable helpers, not tests)."""
from __future__ import annotations

import io
import json
import struct
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from engine.data.reasons import QuarantineRecord


def png(color: str = "red", size: tuple[int, int] = (16, 16)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def jpeg(color: str = "blue", size: tuple[int, int] = (16, 16)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="JPEG")
    return buf.getvalue()


def malformed_tiff() -> bytes:
    """A TIFF whose StripOffsets tag is typed ASCII: PIL's load() raises TypeError, not OSError."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buf, format="TIFF")
    data = bytearray(buf.getvalue())
    ifd = struct.unpack_from("<I", data, 4)[0]
    for i in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * i
        if struct.unpack_from("<H", data, entry)[0] == 273:  # StripOffsets
            struct.pack_into("<H", data, entry + 2, 2)  # type LONG -> ASCII
    return bytes(data)


def make_image_root(base: Path) -> Path:
    """images/ with a.png, sub/b.png, broken.png (garbage), bad.tiff (malformed), loop.png (a symlink
    loop); base/secret.png lies outside it."""
    root = base / "images"
    (root / "sub").mkdir(parents=True)
    (root / "a.png").write_bytes(png("red"))
    (root / "sub" / "b.png").write_bytes(png("green"))
    (root / "broken.png").write_bytes(b"\x89PNG definitely not an image")
    (root / "bad.tiff").write_bytes(malformed_tiff())
    (root / "loop.png").symlink_to(root / "loop2.png")
    (root / "loop2.png").symlink_to(root / "loop.png")
    (base / "secret.png").write_bytes(png("black"))
    return root


def write_jsonl(path: Path, records: Iterable[Any]) -> Path:
    """dicts are JSON-encoded; bytes are written verbatim as one line (for hostile lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        for rec in records:
            line = rec if isinstance(rec, bytes) else json.dumps(rec, ensure_ascii=False).encode("utf-8")
            fh.write(line.rstrip(b"\n") + b"\n")
    return path


def write_parquet(path: Path, rows: list[dict], schema: pa.Schema | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def reasons_by_source(quarantine: list[QuarantineRecord]) -> dict[str, str]:
    return {q.source: q.reason for q in quarantine}


# V-Triune / Orsta-Data-47k layout (HF datasets features from their data card).
VTRIUNE_SCHEMA = pa.schema(
    [
        ("data_source", pa.string()),
        ("images", pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))),
        ("prompt", pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))),
        ("ability", pa.string()),
        (
            "reward_model",
            pa.struct(
                [
                    ("answer", pa.string()),
                    ("ground_truth", pa.string()),
                    ("accuracy_ratio", pa.float32()),
                    ("format_ratio", pa.float32()),
                    ("verifier", pa.string()),
                    (
                        "verifier_parm",
                        pa.struct(
                            [
                                ("det_verifier_normalized", pa.bool_()),
                                (
                                    "det_reward_ratio",
                                    pa.struct([(k, pa.float32()) for k in ("iou_max_label_first", "iou_max_iou_first", "iou_completeness", "map", "map50", "map75")]),
                                ),
                            ]
                        ),
                    ),
                ]
            ),
        ),
        ("extra_info", pa.struct([("id", pa.string()), ("image_path", pa.string())])),
    ]
)

DET_BOXES = "[{'bbox_2d': [484, 227, 818, 998], 'label': 'shiba dog'}]"


def vtriune_math_row(**over: Any) -> dict:
    row = {
        "data_source": "mm_math",
        "images": [{"bytes": png("white"), "path": None}],
        "prompt": [{"content": "<image>As shown in the figure, point D is the midpoint of AC, BD = 1cm. What is AB?", "role": "user"}],
        "ability": "math",
        "reward_model": {
            "answer": "4",
            "ground_truth": "\\boxed{4}",
            "accuracy_ratio": 1.0,
            "format_ratio": 0.0,
            "verifier": "mathverify",
            "verifier_parm": {
                "det_verifier_normalized": None,
                "det_reward_ratio": {k: None for k in ("iou_max_label_first", "iou_max_iou_first", "iou_completeness", "map", "map50", "map75")},
            },
        },
        "extra_info": {"id": None, "image_path": "images/51284809.png"},
    }
    row.update(over)
    return row


def vtriune_detection_row(**over: Any) -> dict:
    row = {
        "data_source": "v3det_train",
        "images": [{"bytes": None, "path": "a.png"}],  # path-only: resolved under the image root
        "prompt": [
            {
                "content": "<image>\nLocate all objects of the designated class present in the image:\n- shiba dog\n\n"
                "Begin by clearly explaining your thought process enclosed within <think> and </think> tags. "
                "Afterward, present your final detection results enclosed within <answer> and </answer> tags.",
                "role": "user",
            }
        ],
        "ability": "cv_detection",
        "reward_model": {
            "answer": DET_BOXES,
            "ground_truth": f"<answer>\n{DET_BOXES}\n</answer>",
            "accuracy_ratio": 1.0,
            "format_ratio": 0.1,
            "verifier": "detection",
            "verifier_parm": {
                "det_verifier_normalized": True,
                "det_reward_ratio": {"iou_max_label_first": 1.0, "iou_max_iou_first": 0.0, "iou_completeness": 0.3, "map": 0.0, "map50": 0.0, "map75": 0.0},
            },
        },
        "extra_info": {"id": "v3det-000123", "image_path": "images/a00004438/19_1169.jpg"},
    }
    row.update(over)
    return row
