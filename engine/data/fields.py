"""Typed access to record fields: a wrong or missing field is a reason code, never a crash.

Shared by the canonical sample (engine/data/sample.py) and every format adapter.
"""
from __future__ import annotations

import json
from typing import Any

from engine.data.reasons import Reason, SampleError


def required(record: dict[str, Any], key: str, name: str | None = None) -> Any:
    value = record.get(key)
    if value is None:
        raise SampleError(Reason.MISSING_FIELD, name or key)
    return value


def text(value: Any, name: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SampleError(Reason.TEXT_NOT_UTF8, name) from exc
    raise SampleError(Reason.BAD_FIELD_TYPE, f"{name} is {type(value).__name__}, expected str")


def scalar_text(value: Any, name: str) -> str:
    """Ids and answers: numbers are common in the wild and mean their decimal text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return text(value, name)


def optional_text(value: Any, name: str, default: str = "") -> str:
    return default if value is None else text(value, name)


def items(value: Any, name: str) -> list:
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy arrays from pandas
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise SampleError(Reason.BAD_FIELD_TYPE, f"{name} is {type(value).__name__}, expected a list")
    return list(value)


def json_object(value: Any, name: str) -> dict[str, Any]:
    """A dict, or a JSON string holding one (open-ended dicts travel as JSON strings); None -> {}."""
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return dict(value)
    try:
        obj = json.loads(text(value, name))
    except json.JSONDecodeError as exc:
        raise SampleError(Reason.BAD_JSON, f"{name}: {exc}") from exc
    if not isinstance(obj, dict):
        raise SampleError(Reason.BAD_JSON, f"{name} is not a JSON object")
    return obj
