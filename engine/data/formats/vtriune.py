"""V-Triune / Orsta-Data-47k parquet ("One RL to See Them All") -> Sample.

Row: data_source, images [{bytes, path}], prompt [{role, content}] with `<image>`, ability,
reward_model {answer, ground_truth, accuracy_ratio, format_ratio, verifier, verifier_parm},
extra_info {id, image_path}. `answer` is the bare truth (`ground_truth` is it wrapped for their
reward server). Their reward verifier names map to ours (mathverify -> math, detection -> detection);
a row naming any other is quarantined (unknown_verifier). Everything we do not model is kept under
meta["vtriune"]; verifier_parm keys that are null (struct columns give every row every key) are dropped.

Their box truths are on the 0-1000 grid. `verifier_parm.det_verifier_normalized: true` says the
policy (Qwen2.5-VL) answers in pixels of the image as its processor resized it, which their reward
rescales to that grid: here `pred_scale: resized` with the row's image size (the processor's
min/max pixels come from the row's image entry, or must be given with the reward config).
"""
from __future__ import annotations

import re
from pathlib import Path

from engine.data.images import ImagePolicy
from engine.data.reasons import QuarantineRecord, Reason, SampleError
from engine.data.sample import ImageRef, Sample
from engine.verifiers.registry import BOX_VERIFIERS

from engine.data.formats.answers import unwrap_answer
from engine.data.formats.fields import items, json_object, messages, optional_text, required, scalar_text, text, verifier_params
from engine.data.formats.image_refs import image_refs, image_size
from engine.data.formats.reading import RecordContext, read_with
from engine.data.formats.records import iter_parquet
from engine.data.formats.tasks import vtriune_verifier

KNOWN_COLUMNS = ("data_source", "images", "prompt", "ability", "reward_model", "extra_info")
# Their task for a row with no ability, from the reward verifier it names.
_VERIFIER_TASKS = {"mathverify": "math", "detection": "detection"}
_SPLIT_SUFFIX = re.compile(r"[_-](train|val|test)$")


def read_vtriune(
    path: str | Path, policy: ImagePolicy, *, decode: bool = True, embed_images: bool = True, split: str = "train"
) -> tuple[list[Sample], list[QuarantineRecord]]:
    return read_with(path, policy, parse_vtriune, iter_parquet, (".parquet",), record_id=vtriune_record_id, decode=decode,
                     embed_images=embed_images, split=split)


def vtriune_record_id(record: dict, ctx: RecordContext) -> str:
    """extra_info.id; often null in their files: data_source-file-row."""
    record_id = json_object(record.get("extra_info"), "extra_info").get("id")
    if record_id is not None:
        return scalar_text(record_id, "extra_info.id")
    return ctx.fallback_id(text(required(record, "data_source"), "data_source"))


def parse_vtriune(record: dict, ctx: RecordContext) -> Sample:
    data_source = text(required(record, "data_source"), "data_source")
    msgs = messages(required(record, "prompt"), "prompt")
    images = image_refs(record.get("images"), ctx.policy, embed=ctx.embed_images)
    reward = json_object(required(record, "reward_model"), "reward_model")
    extra = json_object(record.get("extra_info"), "extra_info")
    their_verifier = optional_text(reward.get("verifier"), "reward_model.verifier")
    task = optional_text(record.get("ability"), "ability") or _VERIFIER_TASKS.get(their_verifier, "")
    if not task:
        raise SampleError(Reason.MISSING_FIELD, "ability")
    params = verifier_params(reward.pop("verifier_parm", None), "reward_model.verifier_parm")
    verifier = vtriune_verifier(their_verifier, task)
    if verifier in BOX_VERIFIERS:
        params = {**box_frame(params, images, record.get("images"), ctx), **params}  # a row's own scale keys win
    extra.pop("id", None)  # it is the sample id, not kept twice
    kept = {"reward_model": reward, "extra_info": extra, **{k: v for k, v in record.items() if k not in KNOWN_COLUMNS}}
    return Sample(
        id=vtriune_record_id(record, ctx),
        images=images,
        messages=msgs,
        answer=_answer(reward),
        task=task,
        verifier=verifier,
        verifier_params=params,
        domain=_SPLIT_SUFFIX.sub("", data_source),  # "v3det_train" -> "v3det"
        source=data_source,
        split=ctx.split,
        meta={"vtriune": {k: v for k, v in kept.items() if v}},
    )


def _answer(reward: dict) -> str:
    """reward_model.answer when present (already bare), else ground_truth unwrapped."""
    answer = reward.pop("answer", None)
    if answer is not None and answer != "":
        return scalar_text(answer, "reward_model.answer")
    truth = reward.get("ground_truth")
    if truth is None:
        raise SampleError(Reason.MISSING_FIELD, "reward_model.answer / reward_model.ground_truth")
    return unwrap_answer(scalar_text(truth, "reward_model.ground_truth"))[0]


def box_frame(params: dict, images: list[ImageRef], entries: object, ctx: RecordContext) -> dict:
    """The box frames of a detection row: truth on their 0-1000 grid; the answer on the same grid,
    or (det_verifier_normalized) in pixels of the resized image."""
    if not params.get("det_verifier_normalized"):
        return {"scale": "thousand"}
    frame: dict = {"gt_scale": "thousand", "pred_scale": "resized"}
    if len(images) == 1:  # boxes refer to one image; otherwise the verifier reports the missing size
        frame["image_size"] = image_size(images[0], ctx.policy)
        entry = items(entries, "images")[0]
        if isinstance(entry, dict):  # verl-style rows carry the processor's bounds per image
            frame.update({k: entry[k] for k in ("min_pixels", "max_pixels") if entry.get(k)})
    return frame
