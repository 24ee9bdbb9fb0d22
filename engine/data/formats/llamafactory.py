"""LLaMA-Factory SFT data: sharegpt-style JSONL plus the dataset_info.json entry that loads it.

Row: {"messages": [{role, content}...], "images": [paths]}; the assistant turn is the answer put
through a response template. Image paths are relative to the JSONL's folder, which LLaMA-Factory
uses as media_dir when `dataset_dir` points there.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from engine.data.images import ImagePolicy
from engine.data.reasons import Reason, SampleError
from engine.data.response import DEFAULT_RESPONSE_TEMPLATE, format_response
from engine.data.sample import Message, Sample

from engine.data.formats.output import image_bytes, output_files, save_image, write_jsonl

DATASET_INFO = "dataset_info.json"
TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant", "system_tag": "system"}
COLUMNS = {"messages": "messages", "images": "images"}


def write_llamafactory(
    samples: Sequence[Sample],
    out_path: str | Path,
    *,
    policy: ImagePolicy | None = None,
    template: str = DEFAULT_RESPONSE_TEMPLATE,
    dataset_name: str = "gradus",
) -> list[Path]:
    """`out.jsonl`, or `out/` with train/val/test.jsonl; images in `images/` and dataset_info.json
    beside them, one dataset `<dataset_name>_<file stem>` per file. An existing dataset_info.json
    there is updated, not replaced (LLaMA-Factory keeps all its datasets in one)."""
    policy = policy or ImagePolicy()
    for s in samples:  # every check before anything is written
        conversation(s, template)
    files = output_files(samples, out_path, ".jsonl")
    info_path = files[0][0].parent / DATASET_INFO
    info = _existing_dataset_info(info_path)
    written = []
    for path, group in files:
        written.append(write_jsonl(path, (llamafactory_row(s, path.parent, policy, template) for s in group)))
        info[f"{dataset_name}_{path.stem}"] = dataset_entry(path.name)
    info_path.write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return written + [info_path]


def dataset_entry(file_name: str) -> dict[str, Any]:
    return {"file_name": file_name, "formatting": "sharegpt", "columns": dict(COLUMNS), "tags": dict(TAGS)}


def llamafactory_row(s: Sample, base_dir: Path, policy: ImagePolicy, template: str = DEFAULT_RESPONSE_TEMPLATE) -> dict[str, Any]:
    files = [save_image(image_bytes(ref, policy, s.id), base_dir / "images", s.id, i) for i, ref in enumerate(s.images)]
    return {
        "id": s.id,  # ignored by LLaMA-Factory; keeps rows traceable
        "messages": [{"role": m.role, "content": m.content} for m in conversation(s, template)],
        "images": [str(f.relative_to(base_dir)) for f in files],
    }


def conversation(s: Sample, template: str = DEFAULT_RESPONSE_TEMPLATE) -> list[Message]:
    """The prompt plus the templated answer as the assistant turn, in the turn order sharegpt needs:
    [system], user, assistant, user, assistant... (LLaMA-Factory drops anything else)."""
    turns = s.prompt_messages + [Message("assistant", format_response(s.answer, template))]
    body = turns[1:] if turns[0].role == "system" else turns
    for i, msg in enumerate(body):
        expected = "user" if i % 2 == 0 else "assistant"
        if msg.role != expected:
            raise SampleError(Reason.BAD_ROLE, f"sample {s.id!r}: turn {i} is {msg.role!r}, sharegpt needs {expected!r}")
    return turns


def _existing_dataset_info(path: Path) -> dict[str, Any]:
    """The entries already there (LLaMA-Factory keeps every dataset in one file); never clobber a
    file we cannot read: it may list a user's other datasets."""
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} exists and is not valid JSON; not overwriting it") from exc
    if not isinstance(info, dict):
        raise ValueError(f"{path} exists and is not a JSON object; not overwriting it")
    return info
