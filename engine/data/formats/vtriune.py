"""V-Triune / Orsta-Data-47k parquet ("One RL to See Them All") -> Sample.

Row: data_source, images [{bytes, path}], prompt [{role, content}] with `<image>`, ability,
reward_model {answer, ground_truth, accuracy_ratio, format_ratio, verifier, verifier_parm},
extra_info {id, image_path}. `answer` is the bare truth (`ground_truth` is it wrapped for their
reward server). Everything we do not model is kept under meta["vtriune"].
"""
from __future__ import annotations

import re
from pathlib import Path

from engine.data.images import ImagePolicy
from engine.data.reasons import QuarantineRecord, Reason, SampleError
from engine.data.sample import Sample

from engine.data.formats.answers import unwrap_answer
from engine.data.formats.fields import json_object, messages, optional_text, required, scalar_text, text
from engine.data.formats.image_refs import image_refs
from engine.data.formats.reading import RecordContext, read_with
from engine.data.formats.records import iter_parquet
from engine.data.formats.tasks import VTRIUNE_VERIFIERS, verifier_for_task

KNOWN_COLUMNS = ("data_source", "images", "prompt", "ability", "reward_model", "extra_info")
# Their task for a row with no ability, from the reward verifier it names.
_VERIFIER_TASKS = {"mathverify": "math", "detection": "detection"}
_SPLIT_SUFFIX = re.compile(r"[_-](train|val|test)$")


def read_vtriune(
    path: str | Path, policy: ImagePolicy, *, decode: bool = True, embed_images: bool = True, split: str = "train"
) -> tuple[list[Sample], list[QuarantineRecord]]:
    return read_with(path, policy, parse_vtriune, iter_parquet, (".parquet",), decode=decode, embed_images=embed_images, split=split)


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
    params = json_object(reward.pop("verifier_parm", None), "reward_model.verifier_parm")
    record_id = extra.pop("id", None)
    kept = {"reward_model": reward, "extra_info": extra, **{k: v for k, v in record.items() if k not in KNOWN_COLUMNS}}
    return Sample(
        id=scalar_text(record_id, "extra_info.id") if record_id is not None else ctx.fallback_id(data_source),
        images=images,
        messages=msgs,
        answer=_answer(reward),
        task=task,
        verifier=VTRIUNE_VERIFIERS.get(their_verifier) or verifier_for_task(task),
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
