"""One config dataclass as a reference table (key, type, default, meaning), read from the code
itself (field types, defaults and `# comments`), so a reference page cannot drift from it.
The page of every recipe's config is pipelines/reference.py.
"""
from __future__ import annotations

import dataclasses
import inspect
import re
import typing


def _field_comments(cls) -> dict[str, str]:
    """`name: type = default  # comment` -> {name: comment}, read from the source of the class and of
    its dataclass bases (a recipe config that extends a library config keeps the library's comments)."""
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            comments.update(_own_comments(klass))
    return comments


def _own_comments(cls) -> dict[str, str]:
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    comments = {}
    for line in source.splitlines():
        m = re.match(r"\s+(\w+)\s*:[^#]*#\s*(.+)$", line)
        if m:
            comments[m.group(1)] = m.group(2).strip()
    return comments


def _type_name(tp) -> str:
    text = str(tp) if typing.get_origin(tp) else getattr(tp, "__name__", str(tp))
    return text.replace("typing.", "")


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return repr(f.default)
    if f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
        return "(section)" if dataclasses.is_dataclass(value) else repr(value)
    return "required"


def section_rows(cls, prefix: str = "") -> list[str]:
    rows = []
    hints = typing.get_type_hints(cls)
    comments = _field_comments(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows.extend(section_rows(tp, f"{prefix}{f.name}."))
            continue
        default = _default(f).replace("|", "\\|")
        comment = comments.get(f.name, "").replace("|", "\\|")
        rows.append(f"| `{prefix}{f.name}` | `{_type_name(tp)}` | `{default}` | {comment} |")
    return rows


def section(title: str, cls, text: str) -> list[str]:
    """A page section: heading, one line of text, then a row per field of `cls` (nested sections flattened as a.b)."""
    return [f"## {title} ({cls.__name__})", "", text, "", "| key | type | default | meaning |", "| --- | --- | --- | --- |",
            *section_rows(cls), ""]
