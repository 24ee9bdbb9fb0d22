"""Curr-ReFT JSONL: {"problem", "solution": "<answer>...</answer>", "task", "image"} (image relative to a root)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from engine.data.reasons import SampleError
from engine.data.sample import ImageRef, Message, Sample
from engine.data.formats.common import as_str, iter_jsonl, require, unwrap_answer, with_placeholders

# Curr-ReFT's open-stage rewards (methods.md section 3). Classification's label-set Jaccard
# arrives with the verifier library; until then its labels are judged by normalized exact match.
VERIFIER_BY_TASK = {
    "detection": ("iou", {"threshold": 0.5}),
    "classification": ("exact", {"normalize": True}),
    "math": ("math", {}),
}


def read(path: str | Path, **_) -> Iterator[tuple[str, Sample | SampleError, object]]:
    for index, (source, obj, raw) in enumerate(iter_jsonl(path)):
        if isinstance(obj, SampleError):
            yield source, obj, raw
            continue
        try:
            require(obj, "problem", "solution", "task")
            task = as_str(obj["task"], "task")
            verifier, params = VERIFIER_BY_TASK.get(task, ("exact", {"normalize": True}))
            images = [ImageRef(path=as_str(obj["image"], "image"))] if obj.get("image") else []
            answer, wrapper = unwrap_answer(as_str(obj["solution"], "solution"))
            yield source, Sample(
                id=as_str(obj.get("id") or f"{Path(path).stem}-{index:06d}", "id"),
                images=images,
                messages=[Message("user", with_placeholders(as_str(obj["problem"], "problem"), len(images)))],
                answer=answer,
                task=task,
                verifier=verifier,
                verifier_params=dict(params),
                domain=task,
                source="curr_reft",
                meta={"format": "curr_reft", "solution_wrapper": wrapper},
            ), raw
        except SampleError as err:
            yield source, err, raw
