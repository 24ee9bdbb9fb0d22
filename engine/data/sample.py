"""The canonical training sample: one Arrow schema, one typed class, one validator.

Every adapter reads into `Sample`, every pipeline reads and writes rows of `SAMPLE_SCHEMA`.
`verifier_params` and `meta` are JSON strings in Arrow (open-ended dicts do not fit a fixed
struct type) and dicts in Python.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable

import pyarrow as pa

from engine.data.fields import items, json_object, scalar_text
from engine.data.images import ImagePolicy, load_image
from engine.data.reasons import Reason, SampleError

IMAGE_PLACEHOLDER = "<image>"
ROLES = ("system", "user", "assistant")
SPLITS = ("train", "val", "test")

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
MESSAGE_TYPE = pa.struct([("role", pa.string()), ("content", pa.string())])

SAMPLE_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("images", pa.list_(IMAGE_TYPE)),
        pa.field("messages", pa.list_(MESSAGE_TYPE)),
        pa.field("answer", pa.string()),
        pa.field("task", pa.string()),
        pa.field("verifier", pa.string()),
        pa.field("verifier_params", pa.string()),  # JSON object
        pa.field("domain", pa.string()),
        pa.field("source", pa.string()),
        pa.field("split", pa.string()),
        pa.field("meta", pa.string()),  # JSON object
    ]
)


@dataclass(frozen=True)
class ImageRef:
    bytes: bytes | None = None
    path: str | None = None


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass
class Sample:
    id: str
    images: list[ImageRef]
    messages: list[Message]
    answer: str
    task: str
    verifier: str
    verifier_params: dict[str, Any] = field(default_factory=dict)
    domain: str = ""
    source: str = ""
    split: str = "train"
    meta: dict[str, Any] = field(default_factory=dict)

    # ----- accessors used across the code base -----
    @property
    def prompt_messages(self) -> list[Message]:
        """The conversation up to (not including) a trailing assistant turn."""
        if self.messages and self.messages[-1].role == "assistant":
            return self.messages[:-1]
        return list(self.messages)

    @property
    def question(self) -> str:
        """Text of the last user turn (placeholders included)."""
        for msg in reversed(self.messages):
            if msg.role == "user":
                return msg.content
        return ""

    def placeholder_count(self) -> int:
        return sum(m.content.count(IMAGE_PLACEHOLDER) for m in self.messages)

    def load_images(self, policy: ImagePolicy):
        return [load_image(ref.bytes, ref.path, policy) for ref in self.images]

    # ----- Arrow rows -----
    def to_row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "images": [{"bytes": r.bytes, "path": r.path} for r in self.images],
            "messages": [{"role": m.role, "content": m.content} for m in self.messages],
            "answer": self.answer,
            "task": self.task,
            "verifier": self.verifier,
            "verifier_params": json.dumps(self.verifier_params, sort_keys=True),
            "domain": self.domain,
            "source": self.source,
            "split": self.split,
            "meta": json.dumps(self.meta, sort_keys=True, default=str),
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Sample":
        """Row (from Arrow/pandas/Ray Data) -> Sample; structural problems raise SampleError."""
        for key in ("id", "messages", "answer", "task", "verifier"):
            if row.get(key) is None:
                raise SampleError(Reason.MISSING_FIELD, key)
        images = [ImageRef(_opt_bytes(i.get("bytes")), _opt_str(i.get("path"), "images.path")) for i in _dicts(row.get("images"), "images")]
        messages = [Message(scalar_text(m.get("role"), "messages.role"), scalar_text(m.get("content"), "messages.content")) for m in _dicts(row["messages"], "messages")]
        return cls(
            id=scalar_text(row["id"], "id"),
            images=images,
            messages=messages,
            answer=scalar_text(row["answer"], "answer"),
            task=scalar_text(row["task"], "task"),
            verifier=scalar_text(row["verifier"], "verifier"),
            verifier_params=json_object(row.get("verifier_params"), "verifier_params"),
            domain=_opt_str(row.get("domain"), "domain") or "",
            source=_opt_str(row.get("source"), "source") or "",
            split=_opt_str(row.get("split"), "split") or "train",
            meta=json_object(row.get("meta"), "meta"),
        )


def validate_sample(sample: Sample, policy: ImagePolicy | None = None, *, decode: bool = True) -> Sample:
    """Check a sample's structure (and, with `decode`, every image); raise SampleError or return it."""
    if not sample.id:
        raise SampleError(Reason.MISSING_FIELD, "id is empty")
    if not sample.messages:
        raise SampleError(Reason.EMPTY_MESSAGES, "no messages")
    for msg in sample.messages:
        if msg.role not in ROLES:
            raise SampleError(Reason.BAD_ROLE, f"role {msg.role!r} not in {ROLES}")
    if not any(m.role == "user" for m in sample.messages):
        raise SampleError(Reason.EMPTY_MESSAGES, "no user turn")
    if not sample.answer.strip():
        raise SampleError(Reason.EMPTY_ANSWER, "ground-truth answer is empty")
    if sample.split not in SPLITS:
        raise SampleError(Reason.UNKNOWN_SPLIT, f"split {sample.split!r} not in {SPLITS}")
    check_verifier(sample.verifier)
    for text in _texts(sample):
        _check_utf8(text)
    n_placeholders = sample.placeholder_count()
    if n_placeholders != len(sample.images):
        raise SampleError(Reason.IMAGE_PLACEHOLDER_MISMATCH, f"{n_placeholders} {IMAGE_PLACEHOLDER} placeholders for {len(sample.images)} images")
    if decode:
        sample.load_images(policy or ImagePolicy())
    return sample


def check_verifier(name: str) -> None:
    """Raise SampleError(unknown_verifier) unless `name` is a registered verifier: such a row could
    never be judged, and must be caught per record, not by the first verify call of a batch."""
    from engine.verifiers.registry import VERIFIERS  # lazily: the data layer does not load verifiers on import

    if name not in VERIFIERS:
        raise SampleError(Reason.UNKNOWN_VERIFIER, f"{name!r} is not a registered verifier; known: {sorted(VERIFIERS)}")


def samples_to_table(samples: Iterable[Sample]) -> pa.Table:
    return pa.Table.from_pylist([s.to_row() for s in samples], schema=SAMPLE_SCHEMA)


# ----- field coercion helpers: wrong types become reason codes, not AttributeErrors -----

def _texts(sample: Sample) -> Iterable[str]:
    yield sample.id
    yield sample.answer
    yield sample.task
    for m in sample.messages:
        yield m.content


def _check_utf8(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates from surrogateescape-decoded bytes
        raise SampleError(Reason.TEXT_NOT_UTF8, f"undecodable text near position {exc.start}") from exc


def _opt_str(value: Any, name: str) -> str | None:
    return None if value is None else scalar_text(value, name)


def _opt_bytes(value: Any) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise SampleError(Reason.BAD_FIELD_TYPE, f"images.bytes is {type(value).__name__}")


def _dicts(value: Any, name: str) -> list[dict]:
    """A list of structs (None -> []); anything else is a reason code."""
    out = [] if value is None else items(value, name)
    for item in out:
        if not isinstance(item, dict):
            raise SampleError(Reason.BAD_FIELD_TYPE, f"{name} item is {type(item).__name__}, expected dict")
    return out
