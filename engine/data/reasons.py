"""Reason codes for records that cannot be used, and the quarantine record that carries them.

Bad input never disappears silently: every rejected record becomes a QuarantineRecord with one
of these codes, written next to the good output so nothing is lost.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any


class Reason(str, Enum):
    # structure
    MISSING_FIELD = "missing_field"
    BAD_FIELD_TYPE = "bad_field_type"
    BAD_JSON = "bad_json"
    TEXT_NOT_UTF8 = "text_not_utf8"
    EMPTY_MESSAGES = "empty_messages"
    BAD_ROLE = "bad_role"
    EMPTY_ANSWER = "empty_answer"
    UNKNOWN_SPLIT = "unknown_split"
    DUPLICATE_ID = "duplicate_id"
    UNKNOWN_VERIFIER = "unknown_verifier"  # names a verifier gradus has not registered
    # images
    IMAGE_PLACEHOLDER_MISMATCH = "image_placeholder_mismatch"
    IMAGE_NO_SOURCE = "image_no_source"
    IMAGE_MISSING = "image_missing"
    IMAGE_PATH_ESCAPE = "image_path_escape"
    IMAGE_CORRUPT = "image_corrupt"
    IMAGE_TRUNCATED = "image_truncated"
    IMAGE_TOO_LARGE = "image_too_large"
    IMAGE_DECOMPRESSION_BOMB = "image_decompression_bomb"


class SampleError(ValueError):
    """A record that cannot become a valid sample; `reason` says why in one code. `record_id` is the
    id of the sample the record would have become, where it was known before the error."""

    def __init__(self, reason: Reason, detail: str = "", record_id: str = ""):
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail
        self.record_id = record_id


@dataclass
class QuarantineRecord:
    """One rejected input record, kept with enough context to find and fix it."""

    reason: str
    detail: str
    source: str  # file (and line/row) the record came from
    record_id: str = ""  # the sample id the record would have had ("" when it could not be read)
    raw: str = ""  # the original record, JSON-ish and truncated, for inspection

    @classmethod
    def from_error(cls, err: SampleError, source: str, record_id: str = "", raw: Any = None):
        return cls(err.reason.value, err.detail, source, record_id or err.record_id, _preview(raw))

    def to_row(self) -> dict:
        return asdict(self)


def _preview(raw: Any, limit: int = 2000) -> str:
    if raw is None:
        return ""
    if isinstance(raw, (bytes, bytearray)):
        return repr(bytes(raw[:limit]))
    try:
        text = json.dumps(raw, default=lambda o: f"<{type(o).__name__}>", ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(raw)
    return text[:limit]
