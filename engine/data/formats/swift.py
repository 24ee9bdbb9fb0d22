"""ms-swift GRPO JSONL: {"images": [...], "messages": [...], "solution": ..., <extra columns>}."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Sequence

from engine.data.images import ImagePolicy
from engine.data.reasons import Reason, SampleError
from engine.data.sample import Sample
from engine.data.formats.common import as_str, export_images, image_refs, iter_jsonl, messages_from, require, unwrap_answer, wrap_answer

KNOWN = {"images", "messages", "solution", "id", "task", "verifier", "verifier_params", "domain", "split", "source"}


def read(path: str | Path, default_verifier: str = "math", **_) -> Iterator[tuple[str, Sample | SampleError, object]]:
    for index, (source, obj, raw) in enumerate(iter_jsonl(path)):
        if isinstance(obj, SampleError):
            yield source, obj, raw
            continue
        try:
            require(obj, "messages", "solution")
            answer, wrapper = unwrap_answer(as_str(obj["solution"], "solution"))
            params = obj.get("verifier_params") or {}
            yield source, Sample(
                id=as_str(obj.get("id") or f"{Path(path).stem}-{index:06d}", "id"),
                images=image_refs(obj.get("images")),
                messages=messages_from(obj["messages"]),
                answer=answer,
                task=as_str(obj.get("task") or "unknown", "task"),
                verifier=as_str(obj.get("verifier") or default_verifier, "verifier"),
                verifier_params=json.loads(params) if isinstance(params, str) else dict(params),
                domain=as_str(obj.get("domain") or "", "domain"),
                source=as_str(obj.get("source") or "swift", "source"),
                split=as_str(obj.get("split") or "train", "split"),
                meta={"format": "swift", "solution_wrapper": wrapper, "extra": {k: v for k, v in obj.items() if k not in KNOWN}},
            ), raw
        except SampleError as err:
            yield source, err, raw
        except (TypeError, ValueError) as exc:  # e.g. verifier_params that is not a JSON object
            yield source, SampleError(Reason.BAD_FIELD_TYPE, str(exc)), raw


def write(samples: Sequence[Sample], out_path: str | Path, policy: ImagePolicy | None = None, solution_wrapper: str = "boxed", **_) -> list[Path]:
    """JSONL plus an images/ folder beside it; image paths written absolute so ms-swift finds them from any cwd."""
    out = Path(out_path)
    img_dir = out.parent / "images"
    out.parent.mkdir(parents=True, exist_ok=True)
    policy = policy or ImagePolicy()
    with out.open("w", encoding="utf-8") as fh:
        for s in samples:
            row = {
                "id": s.id,
                "images": export_images(s, img_dir, policy),
                "messages": [{"role": m.role, "content": m.content} for m in s.messages],
                "solution": wrap_answer(s.answer, solution_wrapper),
                "task": s.task,
                "verifier": s.verifier,
                "verifier_params": json.dumps(s.verifier_params, sort_keys=True),
                "domain": s.domain,
                "split": s.split,
                "source": s.source,
            }
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return [out, img_dir]
