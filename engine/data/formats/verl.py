"""verl RL parquet: data_source, prompt, images, ability, reward_model{style, ground_truth}, extra_info{index, ...}.

extra_info reaches verl's reward function, so it carries what our verifiers need (verifier,
params, task) and the difficulty tags; open-ended dicts are JSON strings to keep one Arrow type.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from engine.data.images import ImagePolicy, read_image_bytes
from engine.data.reasons import Reason, SampleError
from engine.data.sample import IMAGE_TYPE, MESSAGE_TYPE, Sample
from engine.data.formats.common import as_str, image_refs, messages_from, require
from engine.data.formats.parquet_rows import iter_parquet_rows

EXTRA_INFO_TYPE = pa.struct(
    [
        ("index", pa.int64()),
        ("id", pa.string()),
        ("task", pa.string()),
        ("verifier", pa.string()),
        ("verifier_params", pa.string()),
        ("domain", pa.string()),
        ("split", pa.string()),
        ("source", pa.string()),
        ("difficulty", pa.string()),
        ("meta", pa.string()),
    ]
)
VERL_SCHEMA = pa.schema(
    [
        ("data_source", pa.string()),
        ("prompt", pa.list_(MESSAGE_TYPE)),
        ("images", pa.list_(IMAGE_TYPE)),
        ("ability", pa.string()),
        ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
        ("extra_info", EXTRA_INFO_TYPE),
    ]
)


def write(samples: Sequence[Sample], out_path: str | Path, policy: ImagePolicy | None = None, **_) -> list[Path]:
    """One self-contained parquet file (image bytes embedded), exactly one `<image>` per image."""
    policy = policy or ImagePolicy()
    rows = []
    for index, s in enumerate(samples):
        meta = dict(s.meta)
        difficulty = meta.pop("difficulty", None)
        rows.append(
            {
                "data_source": s.source or s.domain or "gradus",
                "prompt": [{"role": m.role, "content": m.content} for m in s.prompt_messages],
                "images": [{"bytes": read_image_bytes(r.bytes, r.path, policy), "path": r.path} for r in s.images],
                "ability": s.task,
                "reward_model": {"style": "rule", "ground_truth": s.answer},
                "extra_info": {
                    "index": index,
                    "id": s.id,
                    "task": s.task,
                    "verifier": s.verifier,
                    "verifier_params": json.dumps(s.verifier_params, sort_keys=True),
                    "domain": s.domain,
                    "split": s.split,
                    "source": s.source,
                    "difficulty": json.dumps(difficulty, sort_keys=True) if difficulty is not None else None,
                    "meta": json.dumps(meta, sort_keys=True, default=str),
                },
            }
        )
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=VERL_SCHEMA), out)
    return [out]


def read(path: str | Path, default_verifier: str = "math", **_) -> Iterator[tuple[str, Sample | SampleError, object]]:
    for source, row, raw in iter_parquet_rows(path):
        if isinstance(row, SampleError):
            yield source, row, raw
            continue
        try:
            require(row, "prompt", "reward_model")
            extra = row.get("extra_info") or {}
            rm = row["reward_model"]
            if not isinstance(rm, dict) or rm.get("ground_truth") is None:
                raise SampleError(Reason.MISSING_FIELD, "reward_model.ground_truth")
            meta = json.loads(extra["meta"]) if extra.get("meta") else {"format": "verl"}
            if extra.get("difficulty"):
                meta["difficulty"] = json.loads(extra["difficulty"])
            data_source = as_str(row.get("data_source") or "verl", "data_source")
            yield source, Sample(
                id=as_str(extra.get("id") or f"{data_source}-{extra.get('index', source.rsplit(' ', 1)[-1])}", "extra_info.id"),
                images=image_refs(row.get("images")),
                messages=messages_from(row["prompt"], "prompt"),
                answer=as_str(rm["ground_truth"], "reward_model.ground_truth"),
                task=as_str(extra.get("task") or row.get("ability") or "unknown", "task"),
                verifier=as_str(extra.get("verifier") or default_verifier, "verifier"),
                verifier_params=json.loads(extra["verifier_params"]) if extra.get("verifier_params") else {},
                domain=as_str(extra.get("domain") or data_source, "domain"),
                source=as_str(extra.get("source") or data_source, "source"),
                split=as_str(extra.get("split") or "train", "split"),
                meta=meta,
            ), raw
        except SampleError as err:
            yield source, err, raw
        except json.JSONDecodeError as exc:
            yield source, SampleError(Reason.BAD_JSON, str(exc)), raw
