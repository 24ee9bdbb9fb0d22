"""Configs are data: YAML files -> typed dataclasses, with `key.sub=value` overrides.

Unknown keys and wrong types are errors (a typo must not silently fall back to a default).
`config_hash` is the identity recorded in every output.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import types
import typing
from pathlib import Path
from typing import Any, Sequence, TypeVar

import yaml

T = TypeVar("T")


# Numbers YAML 1.2 reads as floats but PyYAML (YAML 1.1) leaves as strings: 1e-3, 5E+2, -2e4.
_YAML11_FLOAT_GAP = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _yaml12_floats(value: Any) -> Any:
    """Untyped values (engine kwargs, passed-through sections) read `1e-3` as YAML 1.2 does: a float.

    Typed fields decide for themselves in `_coerce` (a str field keeps the text); here nothing says
    text was meant, and the tools these values go to (vLLM kwargs, OmegaConf) would want the number.
    """
    if isinstance(value, str) and _YAML11_FLOAT_GAP.fullmatch(value.strip()):
        return float(value)
    if isinstance(value, dict):
        return {k: _yaml12_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_yaml12_floats(v) for v in value]
    return value


class ConfigError(ValueError):
    pass


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Build `cls` from a YAML file (optional) plus `a.b=value` overrides (values parsed as YAML)."""
    data: dict[str, Any] = {}
    if path is not None:
        text = Path(path).read_text(encoding="utf-8")
        loaded = yaml.safe_load(text) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
        data = loaded
    for item in overrides:
        apply_override(data, item)
    return from_dict(cls, data)


def apply_override(data: dict[str, Any], item: str) -> None:
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not key=value")
    key, raw = item.split("=", 1)
    node = data
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key!r}: {part!r} is not a section")
    node[parts[-1]] = yaml.safe_load(raw) if raw != "" else ""


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls} is not a dataclass")
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"{where or cls.__name__}: unknown key(s) {sorted(unknown)}; known: {sorted(names)}")
    kwargs = {name: _coerce(hints[name], value, f"{where}{name}") for name, value in data.items()}
    try:
        obj = cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where or cls.__name__}: {exc}") from exc
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate()
    return obj


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return _yaml12_floats(value)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        arms = [arg for arg in args if arg is not type(None)]
        errors = []
        for arg in arms:
            try:
                return _coerce(arg, value, where)
            except ConfigError as exc:
                if len(arms) == 1:
                    raise  # `X | None`: X's own error names the bad key or item
                errors.append(str(exc))
        raise ConfigError(f"{where}: {value!r} matches none of {args}: " + "; ".join(errors))
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, f"{where}.")
    if origin in (list, tuple, Sequence, typing.Sequence):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        items = [_coerce(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        vt = args[1] if len(args) == 2 else Any
        return {k: _coerce(vt, v, f"{where}.{k}") for k, v in value.items()}
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} not one of {args}")
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        # PyYAML resolves floats by YAML 1.1, which wants a dot: `lr: 1e-3` / `lr=1e-3` arrive as str
        value = _yaml12_floats(value)
    if tp in (int, float, str, bool):
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
        return value
    return value


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def config_hash(cfg: Any) -> str:
    """Stable short hash of a config's content (key order and YAML formatting do not matter)."""
    payload = json.dumps(cfg if isinstance(cfg, dict) else to_dict(cfg), sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def dump_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
