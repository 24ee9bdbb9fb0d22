"""ms-swift GRPO JSONL: reader and writer.

Record: {"images": [path | {bytes, path}], "messages": [{role, content}] with `<image>`,
"solution": ground truth, ...extra columns} (ms-swift passes every extra column to the reward
functions as a keyword). The reader keeps the bare answer and records a solution wrapper
(`<answer>..</answer>`, `\\boxed{}`) and unknown columns under meta["swift"]; the writer puts the
extra columns back, writes the bare answer as the solution (what gradus verifiers compare against)
and the rest of the Sample as columns, so a gradus-written file reads back as the same samples.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Sequence

from engine.data.images import ImagePolicy
from engine.data.reasons import QuarantineRecord, Reason, SampleError
from engine.data.response import format_response
from engine.data.sample import Sample, check_verifier

from engine.data.formats.answers import unwrap_answer
from engine.data.formats.fields import json_object, messages, optional_text, required, scalar_text, split_name
from engine.data.formats.image_refs import image_refs
from engine.data.formats.output import image_bytes, json_text, output_files, save_image, write_jsonl
from engine.data.formats.reading import RecordContext, read_with
from engine.data.formats.records import iter_jsonl
from engine.data.formats.tasks import verifier_for_task

# Columns that map onto Sample fields; any other column is an "extra" kept in meta["swift"]["extra"].
SAMPLE_COLUMNS = ("images", "messages", "solution", "id", "task", "verifier", "verifier_params", "domain", "source", "split", "gradus_meta")


# ----- reader -----

def read_swift(
    path: str | Path,
    policy: ImagePolicy,
    *,
    decode: bool = True,
    embed_images: bool = True,
    split: str = "train",
    task: str = "general",
    verifier: str | None = None,
) -> tuple[list[Sample], list[QuarantineRecord]]:
    """`task`/`verifier` apply to records without task/verifier columns (foreign files). A record
    naming a verifier gradus does not have is quarantined (unknown_verifier)."""
    if verifier:
        check_verifier(verifier)  # a wrong option is refused once, not quarantined record by record

    def parse(record: dict, ctx: RecordContext) -> Sample:
        return parse_swift(record, ctx, task=task, verifier=verifier)

    return read_with(path, policy, parse, iter_jsonl, (".jsonl",), record_id=swift_record_id, decode=decode,
                     embed_images=embed_images, split=split)


def swift_record_id(record: dict, ctx: RecordContext) -> str:
    return scalar_text(record["id"], "id") if record.get("id") is not None else ctx.fallback_id("swift")


def parse_swift(record: dict, ctx: RecordContext, *, task: str = "general", verifier: str | None = None) -> Sample:
    msgs = messages(required(record, "messages"), "messages")
    images = image_refs(record.get("images"), ctx.policy, embed=ctx.embed_images)
    answer, wrapper = unwrap_answer(_solution(record, msgs))
    meta = json_object(record.get("gradus_meta"), "gradus_meta")
    extra = {k: v for k, v in record.items() if k not in SAMPLE_COLUMNS}
    if wrapper or extra:
        swift_meta = dict(meta.get("swift") or {})
        if wrapper:
            swift_meta["solution_wrapper"] = wrapper
        if extra:
            swift_meta["extra"] = extra
        meta["swift"] = swift_meta
    record_task = optional_text(record.get("task"), "task") or optional_text(record.get("task_type"), "task_type") or task
    return Sample(
        id=swift_record_id(record, ctx),
        images=images,
        messages=msgs,
        answer=answer,
        task=record_task,
        verifier=optional_text(record.get("verifier"), "verifier") or verifier or verifier_for_task(record_task),
        verifier_params=json_object(record.get("verifier_params"), "verifier_params"),
        domain=optional_text(record.get("domain"), "domain"),
        source=optional_text(record["source"], "source") if "source" in record else "swift",
        split=split_name(record.get("split"), ctx.split),
        meta=meta,
    )


def _solution(record: dict, msgs: list) -> str:
    """`solution`; SFT-style files without one carry the answer in the final assistant turn."""
    if record.get("solution") is not None:
        return scalar_text(record["solution"], "solution")
    if msgs and msgs[-1].role == "assistant":
        return msgs[-1].content
    raise SampleError(Reason.MISSING_FIELD, "solution")


# ----- writer -----

def write_swift(
    samples: Sequence[Sample],
    out_path: str | Path,
    *,
    policy: ImagePolicy | None = None,
    relative_image_paths: bool = False,
    solution_template: str = "{answer}",
) -> list[Path]:
    """`out.jsonl`, or `out/` with train/val/test.jsonl; images go to `images/` beside the JSONL.
    Paths are absolute by default: ms-swift opens them as given, from wherever it runs.
    The solution is the bare answer unless `solution_template` (e.g. "\\boxed{{{answer}}}", what
    ms-swift's own accuracy rewards parse) says otherwise; the reader unwraps either."""
    policy = policy or ImagePolicy()
    written = []
    for path, group in output_files(samples, out_path, ".jsonl"):
        rows = (swift_row(s, path.parent, policy, relative_image_paths, solution_template) for s in group)
        written.append(write_jsonl(path, rows))
    return written


def swift_row(
    s: Sample, base_dir: Path, policy: ImagePolicy, relative_image_paths: bool = False, solution_template: str = "{answer}"
) -> dict[str, Any]:
    files = [save_image(image_bytes(ref, policy, s.id), base_dir / "images", s.id, i) for i, ref in enumerate(s.images)]
    meta, extra = _split_meta(s.meta)
    row = {k: v for k, v in extra.items() if k not in SAMPLE_COLUMNS}
    row.update(
        images=[str(f.relative_to(base_dir)) if relative_image_paths else str(f.resolve()) for f in files],
        messages=[{"role": m.role, "content": m.content} for m in s.prompt_messages],
        solution=format_response(s.answer, solution_template),
        id=s.id,
        task=s.task,
        verifier=s.verifier,
        verifier_params=json_text(s.verifier_params),
        domain=s.domain,
        source=s.source,
        split=s.split,
        gradus_meta=json_text(meta),
    )
    return row


def _split_meta(meta: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(meta to store as JSON, extra columns to restore): the inverse of what parse_swift builds."""
    meta = copy.deepcopy(meta)
    swift_meta = meta.get("swift")
    if not isinstance(swift_meta, dict):
        return meta, {}
    extra = swift_meta.pop("extra", None) or {}
    if not swift_meta:
        del meta["swift"]
    return meta, extra if isinstance(extra, dict) else {}
