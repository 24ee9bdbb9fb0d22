"""DifficultySampling (PISM / CMAB, arXiv 2511.06722) JSONL -> Sample.

Record: {id, ability, prompt, ground_truth, image_paths}; image paths are relative to an image
root; the prompt is plain text (their API calls send the image as a separate part), so `<image>`
placeholders are prepended when the prompt has none. ability is their task type (math, ocr,
counting, cv_detection, cv_grounding...). ground_truth may be wrapped (`<answer>`, `\\boxed{}`):
the bare answer is kept, the wrapper and any other fields go under meta["difficulty_sampling"].
"""
from __future__ import annotations

from pathlib import Path

from engine.data.images import ImagePolicy
from engine.data.reasons import QuarantineRecord
from engine.data.sample import Message, Sample

from engine.data.formats.answers import unwrap_answer
from engine.data.formats.fields import required, scalar_text, text, with_placeholders
from engine.data.formats.image_refs import image_refs
from engine.data.formats.reading import RecordContext, read_with
from engine.data.formats.records import iter_jsonl
from engine.data.formats.tasks import verifier_for_task

KNOWN_FIELDS = ("id", "ability", "prompt", "ground_truth", "image_paths")


def read_difficulty_sampling(
    path: str | Path, policy: ImagePolicy, *, decode: bool = True, embed_images: bool = True, split: str = "train"
) -> tuple[list[Sample], list[QuarantineRecord]]:
    return read_with(path, policy, parse_difficulty_sampling, iter_jsonl, (".jsonl",), record_id=difficulty_sampling_record_id,
                     decode=decode, embed_images=embed_images, split=split)


def difficulty_sampling_record_id(record: dict, ctx: RecordContext) -> str:
    return scalar_text(required(record, "id"), "id")


def parse_difficulty_sampling(record: dict, ctx: RecordContext) -> Sample:
    ability = text(required(record, "ability"), "ability")
    images = image_refs(required(record, "image_paths"), ctx.policy, embed=ctx.embed_images, name="image_paths")
    prompt = text(required(record, "prompt"), "prompt")
    answer, wrapper = unwrap_answer(scalar_text(required(record, "ground_truth"), "ground_truth"))
    kept = {k: v for k, v in record.items() if k not in KNOWN_FIELDS}
    if wrapper:
        kept["ground_truth_wrapper"] = wrapper
    return Sample(
        id=difficulty_sampling_record_id(record, ctx),
        images=images,
        messages=[Message("user", with_placeholders(prompt, len(images)))],
        answer=answer,
        task=ability,
        verifier=verifier_for_task(ability),
        domain=ability,
        source="difficulty_sampling",
        split=ctx.split,
        meta={"difficulty_sampling": kept} if kept else {},
    )
