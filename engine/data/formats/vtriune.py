"""V-Triune / Orsta parquet: data_source, images, prompt, ability, reward_model{...}, extra_info{...}."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from engine.data.reasons import Reason, SampleError
from engine.data.sample import Sample
from engine.data.formats.common import as_str, image_refs, messages_from, require
from engine.data.formats.parquet_rows import iter_parquet_rows

VERIFIER_NAMES = {"mathverify": "math", "detection": "iou"}


def _params(value: Any) -> dict:
    if value in (None, ""):
        return {}
    if isinstance(value, dict):
        return value
    try:
        obj = json.loads(value)
    except (TypeError, json.JSONDecodeError) as exc:
        raise SampleError(Reason.BAD_JSON, f"verifier_parm: {exc}") from exc
    if not isinstance(obj, dict):
        raise SampleError(Reason.BAD_JSON, "verifier_parm is not an object")
    return obj


def read(path: str | Path, **_) -> Iterator[tuple[str, Sample | SampleError, object]]:
    for source, row, raw in iter_parquet_rows(path):
        if isinstance(row, SampleError):
            yield source, row, raw
            continue
        try:
            require(row, "prompt", "reward_model")
            rm = row["reward_model"]
            if not isinstance(rm, dict):
                raise SampleError(Reason.BAD_FIELD_TYPE, "reward_model is not a struct")
            truth = rm.get("ground_truth") if rm.get("ground_truth") is not None else rm.get("answer")
            if truth is None:
                raise SampleError(Reason.MISSING_FIELD, "reward_model.ground_truth")
            extra = row.get("extra_info") or {}
            data_source = as_str(row.get("data_source") or "vtriune", "data_source")
            verifier = as_str(rm.get("verifier") or "mathverify", "reward_model.verifier")
            yield source, Sample(
                id=as_str(extra.get("id") or f"{data_source}-{source.rsplit(' ', 1)[-1]}", "extra_info.id"),
                images=image_refs(row.get("images")),
                messages=messages_from(row["prompt"], "prompt"),
                answer=as_str(truth, "reward_model.ground_truth"),
                task=as_str(row.get("ability") or "unknown", "ability"),
                verifier=VERIFIER_NAMES.get(verifier, verifier),
                verifier_params=_params(rm.get("verifier_parm")),
                domain=data_source,
                source=data_source,
                meta={
                    "format": "vtriune",
                    "reward_model": {k: v for k, v in rm.items() if k not in ("ground_truth", "verifier_parm")},
                    "extra_info": {k: v for k, v in extra.items() if k != "id"},
                },
            ), raw
        except SampleError as err:
            yield source, err, raw
