"""The loop every reader shares: foreign records -> parse -> validate_all -> (samples, quarantine)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from engine.data.images import ImagePolicy
from engine.data.reasons import QuarantineRecord, Reason, SampleError
from engine.data.sample import Sample
from engine.data.shards import validate_all
from engine.errors import error_detail

from engine.data.formats.image_refs import reader_policy
from engine.data.formats.records import RawRecord


@dataclass(frozen=True)
class RecordContext:
    """What a record parser may know besides the record itself."""

    file: Path
    position: int  # line (JSONL, 1-based) or row (Parquet, 0-based)
    policy: ImagePolicy  # roots already filled in
    embed_images: bool
    split: str  # for records that do not say

    def fallback_id(self, prefix: str) -> str:
        """A stable id for formats whose records carry none: prefix, file stem, position."""
        return f"{prefix}-{self.file.stem}-{self.position}"


RecordParser = Callable[[dict, RecordContext], Sample]
# The id the record's sample gets (the parser uses the same function), so a record quarantined while
# it is parsed (an image path outside the roots, a missing file) still names itself.
RecordId = Callable[[dict, RecordContext], str]


def input_files(path: str | Path, suffixes: Sequence[str]) -> list[Path]:
    """A file, or every file with one of `suffixes` under a directory (quarantine/ skipped)."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise FileNotFoundError(f"no input at {p}")
    return sorted(q for q in p.rglob("*") if q.is_file() and q.suffix in suffixes and "quarantine" not in q.relative_to(p).parts)


def read_with(
    path: str | Path,
    policy: ImagePolicy,
    parse: RecordParser,
    iter_records: Callable[[Path], Iterable[RawRecord]],
    suffixes: Sequence[str],
    *,
    record_id: RecordId,
    decode: bool = True,
    embed_images: bool = True,
    split: str = "train",
) -> tuple[list[Sample], list[QuarantineRecord]]:
    files = input_files(path, suffixes)
    confined = reader_policy(policy, path)

    def parsed() -> Iterator[tuple[str, Sample | SampleError, object]]:
        for file in files:
            for source, position, record, raw in iter_records(file):
                if isinstance(record, SampleError):
                    yield source, record, raw
                    continue
                ctx = RecordContext(file, position, confined, embed_images, split)
                yield source, _parse_one(parse, record_id, record, ctx), raw

    return validate_all(parsed(), confined, decode=decode)


def _parse_one(parse: RecordParser, record_id: RecordId, record: dict, ctx: RecordContext) -> Sample | SampleError:
    try:
        return parse(record, ctx)
    except SampleError as err:
        err.record_id = err.record_id or _id_or_empty(record_id, record, ctx)
        return err
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        # Safety net for shapes the parser did not foresee: still a quarantined record, not a crash.
        return SampleError(Reason.BAD_FIELD_TYPE, error_detail(exc, limit=300), _id_or_empty(record_id, record, ctx))


def _id_or_empty(record_id: RecordId, record: dict, ctx: RecordContext) -> str:
    """The record's id for its quarantine record; "" when the id itself is missing or malformed."""
    try:
        return record_id(record, ctx)
    except (SampleError, TypeError, ValueError, AttributeError, KeyError):
        return ""
