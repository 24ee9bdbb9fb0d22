"""Helpers shared by the format adapters: strict JSONL reading, answer wrappers, image refs."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

from engine.data.images import ImagePolicy, read_image_bytes
from engine.data.reasons import Reason, SampleError
from engine.data.sample import IMAGE_PLACEHOLDER, ImageRef, Message, Sample

_ANSWER_TAG = re.compile(r"^\s*<answer>(.*?)</answer>\s*$", re.DOTALL)
_BOXED = re.compile(r"^\s*\\boxed\{(.*)\}\s*$", re.DOTALL)


def iter_jsonl(path: str | Path) -> Iterator[tuple[str, dict | SampleError, Any]]:
    """(source "file:line", parsed object or SampleError, raw) per non-blank line; never raises on content."""
    path = Path(path)
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            source = f"{path}:{lineno}"
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield source, SampleError(Reason.TEXT_NOT_UTF8, f"byte {exc.start}"), raw[:2000]
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                yield source, SampleError(Reason.BAD_JSON, str(exc)), text[:2000]
                continue
            if not isinstance(obj, dict):
                yield source, SampleError(Reason.BAD_JSON, "line is not a JSON object"), text[:2000]
                continue
            yield source, obj, obj


def unwrap_answer(solution: str) -> tuple[str, str]:
    """'<answer>x</answer>' / '\\boxed{x}' / 'x' -> (x, wrapper name) so writers can restore it."""
    m = _ANSWER_TAG.match(solution)
    if m:
        inner, wrapper = m.group(1).strip(), "answer_tag"
        boxed = _BOXED.match(inner)
        return (boxed.group(1).strip(), "answer_tag+boxed") if boxed else (inner, wrapper)
    m = _BOXED.match(solution)
    if m:
        return m.group(1).strip(), "boxed"
    return solution.strip(), "none"


def wrap_answer(answer: str, wrapper: str) -> str:
    return {
        "answer_tag": f"<answer>{answer}</answer>",
        "answer_tag+boxed": f"<answer>\\boxed{{{answer}}}</answer>",
        "boxed": f"\\boxed{{{answer}}}",
        "none": answer,
    }[wrapper]


def require(obj: dict, *keys: str) -> None:
    for key in keys:
        if obj.get(key) is None:
            raise SampleError(Reason.MISSING_FIELD, key)


def as_str(value: Any, name: str) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise SampleError(Reason.BAD_FIELD_TYPE, f"{name} is {type(value).__name__}, expected str")
    return value


def as_list(value: Any, name: str) -> list:
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, (list, tuple)):
        raise SampleError(Reason.BAD_FIELD_TYPE, f"{name} is {type(value).__name__}, expected list")
    return list(value)


def image_refs(items: Any, name: str = "images") -> list[ImageRef]:
    """Paths (str) or {bytes, path} dicts -> ImageRefs; paths are confined later, at decode."""
    refs = []
    for item in as_list(items, name):
        if isinstance(item, str):
            refs.append(ImageRef(path=item))
        elif isinstance(item, dict):
            data = item.get("bytes")
            if data is not None and not isinstance(data, (bytes, bytearray)):
                raise SampleError(Reason.BAD_FIELD_TYPE, f"{name}.bytes is {type(data).__name__}")
            path = item.get("path") or item.get("image")
            refs.append(ImageRef(bytes=bytes(data) if data else None, path=as_str(path, f"{name}.path") if path else None))
        else:
            raise SampleError(Reason.BAD_FIELD_TYPE, f"{name} item is {type(item).__name__}")
    return refs


def messages_from(items: Any, name: str = "messages") -> list[Message]:
    out = []
    for m in as_list(items, name):
        if not isinstance(m, dict):
            raise SampleError(Reason.BAD_FIELD_TYPE, f"{name} item is {type(m).__name__}")
        require(m, "role", "content")
        out.append(Message(as_str(m["role"], f"{name}.role"), as_str(m["content"], f"{name}.content")))
    return out


def with_placeholders(text: str, n_images: int) -> str:
    """Prepend one `<image>` per image when a prompt names none (older formats omit them)."""
    if IMAGE_PLACEHOLDER in text or n_images == 0:
        return text
    return IMAGE_PLACEHOLDER * n_images + "\n" + text


def export_images(sample: Sample, img_dir: Path, policy: ImagePolicy) -> list[str]:
    """Write a sample's images as files for path-based formats; returns absolute paths
    (trainers resolve relative paths against their own cwd, which is rarely ours)."""
    img_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, ref in enumerate(sample.images):
        safe_id = "".join(c if c.isalnum() or c in "-_." else "_" for c in sample.id)
        target = img_dir / f"{safe_id}-{i}.png"
        target.write_bytes(read_image_bytes(ref.bytes, ref.path, policy))
        paths.append(str(target.resolve()))
    return paths
