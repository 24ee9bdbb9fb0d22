"""Typed access to foreign record fields: a wrong or missing field is a reason code, never a crash."""
from __future__ import annotations

from typing import Any

from engine.data.fields import items, json_object, optional_text, required, scalar_text, text
from engine.data.reasons import Reason, SampleError
from engine.data.sample import IMAGE_PLACEHOLDER, Message

__all__ = ["items", "json_object", "messages", "optional_text", "required", "scalar_text", "split_name", "text", "verifier_params",
           "with_placeholders"]

# Split names other projects use for ours.
SPLIT_ALIASES = {"training": "train", "validation": "val", "valid": "val", "dev": "val", "eval": "val", "testing": "test"}


def messages(value: Any, name: str) -> list[Message]:
    """A chat list of {role, content}; content may be a string or OpenAI-style typed parts."""
    out = []
    for i, msg in enumerate(items(value, name)):
        if not isinstance(msg, dict):
            raise SampleError(Reason.BAD_FIELD_TYPE, f"{name}[{i}] is {type(msg).__name__}, expected an object")
        role = text(required(msg, "role", f"{name}[{i}].role"), f"{name}[{i}].role")
        out.append(Message(role, _content(required(msg, "content", f"{name}[{i}].content"), f"{name}[{i}].content")))
    return out


def _content(value: Any, name: str) -> str:
    if not isinstance(value, (list, tuple)):
        return text(value, name)
    pieces = []
    for part in value:  # [{"type": "image"}, {"type": "text", "text": ...}] -> "<image>..."
        if not isinstance(part, dict):
            raise SampleError(Reason.BAD_FIELD_TYPE, f"{name} part is {type(part).__name__}")
        kind = part.get("type")
        if kind in ("image", "image_url"):
            pieces.append(IMAGE_PLACEHOLDER)
        elif kind == "text":
            pieces.append(text(required(part, "text", f"{name}.text"), f"{name}.text"))
        else:
            raise SampleError(Reason.BAD_FIELD_TYPE, f"{name} part type {kind!r} not supported")
    return "".join(pieces)


def split_name(value: Any, default: str) -> str:
    if value is None or value == "":
        return default
    name = text(value, "split").strip().lower()
    return SPLIT_ALIASES.get(name, name)


def with_placeholders(prompt: str, n_images: int) -> str:
    """Prompts stored without `<image>` (the image went in as a separate part): one per image, in
    front, then a newline, as in DifficultySampling's own converted files ("<image>\nWhere is...")."""
    if IMAGE_PLACEHOLDER in prompt or n_images == 0:
        return prompt
    return IMAGE_PLACEHOLDER * n_images + "\n" + prompt


def verifier_params(value: Any, name: str) -> dict[str, Any]:
    """A verifier-params object without null keys, at any depth. Parquet struct columns give every
    row every key any row of the file had (None where the row had none); a verifier must not read
    those as settings."""
    return _without_nulls(json_object(value, name))


def _without_nulls(obj: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in obj.items():
        if isinstance(value, dict):
            value = _without_nulls(value)
            if not value:  # a struct whose every field was null: absent in this row
                continue
        if value is not None:
            out[key] = value
    return out
