"""Curr-ReFT (arXiv 2503.07065) GRPO JSONL -> Sample.

Record: {problem, solution, task, image}; `image` is relative to an image root; solution is
`<answer>..</answer>` (stages 1-2) or `<thinking>..</thinking><answer>..</answer>` (stage 3).
The stage (judge / choice / open) decides the verifier: yes/no answers -> yesno, letter answers ->
choice (set semantics) whatever the task; open answers use the task's verifier (Curr-ReFT's
detection is one box at IoU >= 0.5 -> iou, classification -> label-set Jaccard, math -> math).
"""
from __future__ import annotations

from pathlib import Path

from engine.data.images import ImagePolicy
from engine.data.reasons import QuarantineRecord
from engine.data.sample import Message, Sample

from engine.data.formats.answers import unwrap_answer
from engine.data.formats.fields import required, scalar_text, text, with_placeholders
from engine.data.formats.image_refs import image_refs, image_size
from engine.data.formats.reading import RecordContext, read_with
from engine.data.formats.records import iter_jsonl
from engine.data.formats.tasks import verifier_for_task

KNOWN_FIELDS = ("id", "problem", "solution", "task", "image")
# Their open-stage detection reward: IoU >= 0.5, truth and answer compared as written, in pixels of
# the image file (a Qwen2.5-VL policy answers on its resized image: set pred_scale resized for that).
OPEN_PARAMS = {"iou": {"threshold": 0.5, "scale": "pixel"}}
OPEN_VERIFIERS = {"detection": "iou"}  # Curr-ReFT detection answers are single boxes
STAGES = ("judge", "choice", "open")


def read_curr_reft(
    path: str | Path,
    policy: ImagePolicy,
    *,
    decode: bool = True,
    embed_images: bool = True,
    split: str = "train",
    stage: str | None = None,
) -> tuple[list[Sample], list[QuarantineRecord]]:
    """`stage=None` infers it per file from the path (their layout: .../stage1_judge/, .../open/...)."""
    if stage is not None and stage not in STAGES:
        raise ValueError(f"unknown Curr-ReFT stage {stage!r}; expected one of {STAGES}")

    def parse(record: dict, ctx: RecordContext) -> Sample:
        return parse_curr_reft(record, ctx, stage=stage or stage_from_path(ctx.file))

    return read_with(path, policy, parse, iter_jsonl, (".jsonl",), record_id=curr_reft_record_id, decode=decode,
                     embed_images=embed_images, split=split)


def curr_reft_record_id(record: dict, ctx: RecordContext) -> str:
    return scalar_text(record["id"], "id") if record.get("id") is not None else ctx.fallback_id("curr_reft")


def stage_from_path(path: Path) -> str:
    """Their files sit two levels under the stage folder (train/open/coco_3k_2task/x.jsonl); look
    no higher, so a user's own directory names cannot flip the stage."""
    near = "/".join(path.parts[-3:]).lower()
    for stage in ("judge", "choice"):
        if stage in near:
            return stage
    return "open"


def parse_curr_reft(record: dict, ctx: RecordContext, *, stage: str = "open") -> Sample:
    task = text(required(record, "task"), "task")
    image = required(record, "image")
    images = image_refs([image] if isinstance(image, str) else image, ctx.policy, embed=ctx.embed_images, name="image")
    problem = text(required(record, "problem"), "problem")
    answer, wrapper = unwrap_answer(scalar_text(required(record, "solution"), "solution"))
    kept = {"stage": stage, **{k: v for k, v in record.items() if k not in KNOWN_FIELDS}}
    if wrapper:
        kept["solution_wrapper"] = wrapper
    verifier = {"judge": "yesno", "choice": "choice"}.get(stage) or OPEN_VERIFIERS.get(task) or verifier_for_task(task)
    return Sample(
        id=curr_reft_record_id(record, ctx),
        images=images,
        # Their trainer sends [image part, text part]: the placeholder goes first.
        messages=[Message("user", with_placeholders(problem, len(images)))],
        answer=answer,
        task=task,
        verifier=verifier,
        verifier_params=_open_params(verifier, images, ctx),
        domain=task,
        source="curr_reft",
        split=ctx.split,
        meta={"curr_reft": kept},
    )


def _open_params(verifier: str, images: list, ctx: RecordContext) -> dict:
    params = dict(OPEN_PARAMS.get(verifier, {}))
    if params.get("scale") == "pixel" and len(images) == 1:
        params["image_size"] = image_size(images[0], ctx.policy)
    return params
