"""Foreign image entries (paths, {bytes, path} structs, base64) -> ImageRef, confined to the image roots.

Paths are checked while reading, so an escaping or missing path is quarantined with its reason
even when images are not decoded; by default the bytes are embedded so canonical shards are
self-contained and need no image root later.
"""
from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any

from engine.data.images import ImagePolicy, load_image, read_image_bytes, resolve_image_path
from engine.data.reasons import Reason, SampleError
from engine.data.sample import ImageRef

from engine.data.formats.fields import items


def reader_policy(policy: ImagePolicy, input_path: str | Path) -> ImagePolicy:
    """With no roots configured, confine image paths to the input's own directory (never "anywhere")."""
    if policy.roots:
        return policy
    p = Path(input_path)
    return policy.with_roots([p if p.is_dir() else p.parent])


def image_refs(value: Any, policy: ImagePolicy, *, embed: bool, name: str = "images") -> list[ImageRef]:
    if value is None:
        return []
    return [image_ref(entry, policy, embed=embed, name=f"{name}[{i}]") for i, entry in enumerate(items(value, name))]


def image_size(ref: ImageRef, policy: ImagePolicy) -> list[int]:
    """[width, height] of a referenced image, read under the usual guards: box answers are
    measured against it (the box verifiers' `image_size`)."""
    return list(load_image(ref.bytes, ref.path, policy).size)


def image_ref(entry: Any, policy: ImagePolicy, *, embed: bool, name: str = "image") -> ImageRef:
    data, path = _bytes_and_path(entry, name)
    if data:
        return ImageRef(bytes=data, path=path)
    if not path:
        raise SampleError(Reason.IMAGE_NO_SOURCE, f"{name} has neither bytes nor path")
    if embed:
        return ImageRef(bytes=read_image_bytes(None, path, policy), path=path)
    resolve_image_path(path, policy.roots)  # raises IMAGE_PATH_ESCAPE / IMAGE_MISSING
    return ImageRef(path=path)


def _bytes_and_path(entry: Any, name: str) -> tuple[bytes | None, str | None]:
    if isinstance(entry, str):
        return _from_string(entry, name)
    if not isinstance(entry, dict):
        raise SampleError(Reason.BAD_FIELD_TYPE, f"{name} is {type(entry).__name__}, expected a path or {{bytes, path}}")
    path = entry.get("path", entry.get("image"))
    if path is not None and not isinstance(path, str):
        raise SampleError(Reason.BAD_FIELD_TYPE, f"{name}.path is {type(path).__name__}")
    data = entry.get("bytes")
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    elif isinstance(data, str):  # JSON cannot hold raw bytes: base64 text
        data = _b64(data, name)
    elif data is not None and not isinstance(data, bytes):
        raise SampleError(Reason.BAD_FIELD_TYPE, f"{name}.bytes is {type(data).__name__}")
    if path is not None and not data:
        data, path = _from_string(path, name)
    return data, path


def _from_string(value: str, name: str) -> tuple[bytes | None, str | None]:
    if value.startswith("data:image"):
        return _b64(value.split("base64,", 1)[-1], name), None
    if value.startswith("file://"):
        return None, value[len("file://") :]
    if "://" in value:
        # Remote references are never fetched: the data must be local and under the roots.
        raise SampleError(Reason.IMAGE_PATH_ESCAPE, f"{name} is a remote URL {value[:80]!r}")
    return None, value


def _b64(value: str, name: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SampleError(Reason.IMAGE_CORRUPT, f"{name}: bad base64 image data") from exc
