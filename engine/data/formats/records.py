"""Raw records out of foreign files, each tagged with where it came from.

JSONL is read as bytes per line and decoded strictly, so one bad line (not UTF-8, not JSON, not an
object) becomes a SampleError for that line while the rest of the file still loads.
Sources read "file:line" (1-based, as editors count) or "file:row N" (0-based, as Arrow counts).
"""
from __future__ import annotations

import codecs
import json
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from engine.data.reasons import Reason, SampleError

# (source, position, record-or-error, raw): raw is what the quarantine file shows.
RawRecord = tuple[str, int, "dict[str, Any] | SampleError", Any]


def iter_jsonl(path: Path) -> Iterator[RawRecord]:
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if lineno == 1 and line.startswith(codecs.BOM_UTF8):
                line = line[len(codecs.BOM_UTF8) :]
            if not line.strip():
                continue
            source = f"{path}:{lineno}"
            yield (source, lineno, *_parse_line(line))


def _parse_line(line: bytes) -> tuple[dict[str, Any] | SampleError, Any]:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return SampleError(Reason.TEXT_NOT_UTF8, f"byte {exc.start}: {exc.reason}"), line
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:  # RecursionError: absurdly nested input
        return SampleError(Reason.BAD_JSON, str(exc)[:200]), text
    if not isinstance(obj, dict):
        return SampleError(Reason.BAD_FIELD_TYPE, f"record is a JSON {type(obj).__name__}, expected an object"), text
    if _has_lone_surrogate(obj):
        # "\ud800" escapes are valid JSON but not encodable text: they would crash the Parquet writer.
        return SampleError(Reason.TEXT_NOT_UTF8, "lone surrogate escape in a string"), text
    return obj, obj


def _has_lone_surrogate(obj: Any) -> bool:
    stack = [obj]
    while stack:  # iterative: nesting depth is attacker-controlled
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def iter_parquet(path: Path, batch_size: int = 64) -> Iterator[RawRecord]:
    """Rows as Python dicts; a row whose strings are not valid UTF-8 becomes a SampleError, and a
    file (or the rest of one) that cannot be read becomes one quarantine record, not a crash, so
    one broken shard does not stop a directory."""
    row = 0
    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size):
            for item in _batch_rows(batch):
                yield f"{path}:row {row}", row, item, None if isinstance(item, SampleError) else item
                row += 1
    except (pa.ArrowException, OSError) as exc:
        where = f"{path}:row {row}" if row else str(path)
        # No reason code names "unreadable file"; the detail does.
        yield where, row, SampleError(Reason.BAD_FIELD_TYPE, f"unreadable parquet from row {row} on: {exc}"[:300]), None


def _batch_rows(batch: pa.RecordBatch) -> list[dict[str, Any] | SampleError]:
    try:
        return batch.to_pylist()
    except (UnicodeDecodeError, pa.ArrowException):
        pass
    rows: list[dict[str, Any] | SampleError] = []
    for i in range(batch.num_rows):  # slow path: find the bad rows one by one
        try:
            rows.append(batch.slice(i, 1).to_pylist()[0])
        except (UnicodeDecodeError, pa.ArrowException) as exc:
            rows.append(SampleError(Reason.TEXT_NOT_UTF8, str(exc)[:200]))
    return rows
