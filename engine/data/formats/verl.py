"""verl RL parquet (verl 0.9.1 `RLHFDataset`): reader and writer.

Row: data_source, prompt [{role, content}] with one literal `<image>` per image (the loader asserts
the count), images [{bytes, path}], ability, reward_model {style: "rule", ground_truth},
extra_info {index, ...}. extra_info reaches compute_score, so it carries the gradus fields a reward
function needs; open-ended dicts travel as JSON strings so the struct has one Arrow type for all rows.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from engine.data.images import ImagePolicy
from engine.data.reasons import QuarantineRecord, Reason, SampleError
from engine.data.sample import MESSAGE_TYPE, Sample, check_verifier

from engine.data.formats.fields import json_object, messages, optional_text, required, scalar_text, split_name, text
from engine.data.formats.image_refs import image_refs
from engine.data.formats.output import image_bytes, json_text, output_files
from engine.data.formats.reading import RecordContext, read_with
from engine.data.formats.records import iter_parquet
from engine.data.formats.tasks import verifier_for_task

# extra_info fields written by gradus (besides verl's own `index`).
GRADUS_EXTRA_INFO = ("id", "task", "verifier", "verifier_params", "domain", "source", "split", "difficulty", "meta")
EXTRA_INFO_TYPE = pa.struct([("index", pa.int64())] + [(name, pa.string()) for name in GRADUS_EXTRA_INFO])
KNOWN_COLUMNS = ("data_source", "prompt", "images", "ability", "reward_model", "extra_info")


def verl_schema(pixel_keys: Sequence[str] = ()) -> pa.Schema:
    image_fields = [("bytes", pa.binary()), ("path", pa.string())] + [(k, pa.int64()) for k in pixel_keys]
    return pa.schema(
        [
            ("data_source", pa.string()),
            ("prompt", pa.list_(MESSAGE_TYPE)),
            ("images", pa.list_(pa.struct(image_fields))),
            ("ability", pa.string()),
            ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
            ("extra_info", EXTRA_INFO_TYPE),
        ]
    )


def is_verl_file(path: Path) -> bool:
    """A parquet file with verl's columns (used as it is, never exported again)."""
    return path.is_file() and path.suffix == ".parquet" and set(KNOWN_COLUMNS) <= set(pq.read_schema(path).names)


# ----- writer -----

def write_verl(
    samples: Sequence[Sample],
    out_path: str | Path,
    *,
    policy: ImagePolicy | None = None,
    max_pixels: int | None = None,
    min_pixels: int | None = None,
) -> list[Path]:
    """`out.parquet`, or `out/` with train/val/test.parquet. Image bytes are embedded (self-contained
    files); `max_pixels`/`min_pixels` go on every image, where verl honours them per image."""
    policy = policy or ImagePolicy()
    pixels = {k: v for k, v in (("max_pixels", max_pixels), ("min_pixels", min_pixels)) if v is not None}
    schema = verl_schema(tuple(pixels))
    written = []
    for path, group in output_files(samples, out_path, ".parquet"):
        rows = [verl_row(sample, index, policy, pixels) for index, sample in enumerate(group)]
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
        written.append(path)
    return written


def verl_row(s: Sample, index: int, policy: ImagePolicy, pixels: dict[str, int] | None = None) -> dict[str, Any]:
    meta = dict(s.meta)
    difficulty = meta.pop("difficulty", None)
    return {
        "data_source": s.source or "gradus",
        # RL prompt: everything up to the answer; the system turn stays.
        "prompt": [{"role": m.role, "content": m.content} for m in s.prompt_messages],
        "images": [{"bytes": image_bytes(ref, policy, s.id), "path": ref.path, **(pixels or {})} for ref in s.images],
        "ability": s.task,
        "reward_model": {"style": "rule", "ground_truth": s.answer},
        "extra_info": {
            "index": index,
            "id": s.id,
            "task": s.task,
            "verifier": s.verifier,
            "verifier_params": json_text(s.verifier_params),
            "domain": s.domain,
            "source": s.source,
            "split": s.split,
            "difficulty": json_text(difficulty),  # "null" when the sample has no difficulty tags
            "meta": json_text(meta),
        },
    }


# ----- reader -----

def read_verl(
    path: str | Path,
    policy: ImagePolicy,
    *,
    decode: bool = True,
    embed_images: bool = True,
    split: str = "train",
    verifier: str | None = None,
) -> tuple[list[Sample], list[QuarantineRecord]]:
    """verl parquet (a file or a directory of them). Files gradus wrote come back field for field;
    others get task = ability, verifier = `verifier` or the task's default, id from extra_info.index.
    A row naming a verifier gradus does not have is quarantined (unknown_verifier)."""
    if verifier:
        check_verifier(verifier)  # a wrong option is refused once, not quarantined row by row

    def parse(record: dict, ctx: RecordContext) -> Sample:
        return parse_verl(record, ctx, verifier=verifier)

    return read_with(path, policy, parse, iter_parquet, (".parquet",), record_id=verl_record_id, decode=decode,
                     embed_images=embed_images, split=split)


def parse_verl(record: dict, ctx: RecordContext, *, verifier: str | None = None) -> Sample:
    data_source = text(required(record, "data_source"), "data_source")
    msgs = messages(required(record, "prompt"), "prompt")
    images = image_refs(record.get("images"), ctx.policy, embed=ctx.embed_images)
    reward = json_object(required(record, "reward_model"), "reward_model")
    answer = scalar_text(_ground_truth(reward), "reward_model.ground_truth")
    extra = json_object(record.get("extra_info"), "extra_info")
    index = extra.pop("index", None)
    ours = {k: extra.pop(k) for k in GRADUS_EXTRA_INFO if k in extra}
    task = optional_text(ours.get("task"), "extra_info.task") or optional_text(record.get("ability"), "ability")
    meta = json_object(ours.get("meta"), "extra_info.meta")
    difficulty = _difficulty(ours.get("difficulty"))
    if difficulty is not None:
        meta["difficulty"] = difficulty
    foreign = _foreign(record, reward, extra, index, has_id="id" in ours)
    if foreign:
        meta["verl"] = foreign
    return Sample(
        id=verl_record_id(record, ctx),
        images=images,
        messages=msgs,
        answer=answer,
        task=task,
        verifier=optional_text(ours.get("verifier"), "extra_info.verifier") or verifier or verifier_for_task(task),
        verifier_params=json_object(ours.get("verifier_params"), "extra_info.verifier_params"),
        domain=optional_text(ours.get("domain"), "extra_info.domain"),
        source=data_source if ours.get("source") is None else text(ours["source"], "extra_info.source"),
        split=split_name(ours.get("split"), ctx.split),
        meta=meta,
    )


def verl_record_id(record: dict, ctx: RecordContext) -> str:
    """extra_info.id (gradus-written files); verl's own files carry none: data_source-file-index."""
    extra = json_object(record.get("extra_info"), "extra_info")
    if extra.get("id") is not None:
        return scalar_text(extra["id"], "extra_info.id")
    index = extra.get("index")
    data_source = text(required(record, "data_source"), "data_source")
    return f"{data_source}-{ctx.file.stem}-{index if index is not None else ctx.position}"


def _ground_truth(reward: dict[str, Any]) -> Any:
    value = reward.pop("ground_truth", None)
    if value is None:
        raise SampleError(Reason.MISSING_FIELD, "reward_model.ground_truth")
    return value


def _difficulty(value: Any) -> Any:
    """Ours is JSON text; other verl files put plain levels here ("hard", 3): keep those as they are."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value) if value else None
    except json.JSONDecodeError:
        return value


def _foreign(record: dict, reward: dict, extra: dict, index: Any, *, has_id: bool) -> dict[str, Any]:
    """What a foreign verl file carries that Sample does not model, kept for the record."""
    if reward.get("style") == "rule":
        reward.pop("style")
    if not has_id and index is not None:
        extra["index"] = index  # the only identity a foreign row has
    columns = {k: v for k, v in record.items() if k not in KNOWN_COLUMNS}
    return {k: v for k, v in (("reward_model", reward), ("extra_info", extra), ("columns", columns)) if v}
