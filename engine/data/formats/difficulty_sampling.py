"""DifficultySampling JSONL: {"id", "ability", "prompt", "ground_truth", "image_paths"}."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from engine.data.reasons import SampleError
from engine.data.sample import Message, Sample
from engine.data.formats.common import as_str, image_refs, iter_jsonl, require, unwrap_answer, with_placeholders


def read(path: str | Path, default_verifier: str = "math", **_) -> Iterator[tuple[str, Sample | SampleError, object]]:
    for source, obj, raw in iter_jsonl(path):
        if isinstance(obj, SampleError):
            yield source, obj, raw
            continue
        try:
            require(obj, "id", "prompt", "ground_truth")
            images = image_refs(obj.get("image_paths"), "image_paths")
            answer, wrapper = unwrap_answer(as_str(obj["ground_truth"], "ground_truth"))
            ability = as_str(obj.get("ability") or "unknown", "ability")
            yield source, Sample(
                id=as_str(obj["id"], "id"),
                images=images,
                messages=[Message("user", with_placeholders(as_str(obj["prompt"], "prompt"), len(images)))],
                answer=answer,
                task=ability,
                verifier=default_verifier,
                domain=ability,
                source="difficulty_sampling",
                meta={"format": "difficulty_sampling", "solution_wrapper": wrapper},
            ), raw
        except SampleError as err:
            yield source, err, raw
