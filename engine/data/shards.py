"""Canonical parquet shards on disk, and the quarantine files beside them."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from engine.data.images import ImagePolicy
from engine.data.reasons import QuarantineRecord, Reason, SampleError
from engine.data.sample import SAMPLE_SCHEMA, Sample, samples_to_table, validate_sample

QUARANTINE_SCHEMA = pa.schema(
    [("reason", pa.string()), ("detail", pa.string()), ("source", pa.string()), ("record_id", pa.string()), ("raw", pa.string())]
)


def write_shards(samples: Sequence[Sample], out_dir: str | Path, *, rows_per_shard: int = 512, prefix: str = "part") -> list[Path]:
    """Write samples as `prefix-00000.parquet`, ... in `out_dir`; returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    # max(.., 1): an empty split still gets one (empty) shard, so readers find a schema
    for index, start in enumerate(range(0, max(len(samples), 1), rows_per_shard)):
        chunk = samples[start : start + rows_per_shard]
        path = out / f"{prefix}-{index:05d}.parquet"
        pq.write_table(samples_to_table(chunk), path)
        paths.append(path)
    return paths


def shard_paths(path: str | Path) -> list[Path]:
    """A parquet file, or every parquet file under a directory, in a stable order."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise FileNotFoundError(f"no parquet shards at {p}")
    return sorted(q for q in p.rglob("*.parquet") if "quarantine" not in q.parts)


def read_table(path: str | Path) -> pa.Table:
    tables = [pq.read_table(p, schema=SAMPLE_SCHEMA) for p in shard_paths(path)]
    return pa.concat_tables(tables) if tables else SAMPLE_SCHEMA.empty_table()


def iter_samples(path: str | Path) -> Iterator[Sample]:
    for p in shard_paths(path):
        for row in pq.read_table(p, schema=SAMPLE_SCHEMA).to_pylist():
            yield Sample.from_row(row)


def validate_all(
    samples: Iterable[tuple[str, Sample | SampleError, object]], policy: ImagePolicy, *, decode: bool = True
) -> tuple[list[Sample], list[QuarantineRecord]]:
    """(source, sample-or-error, raw) triples -> valid samples and quarantine records; ids must be unique."""
    good: list[Sample] = []
    bad: list[QuarantineRecord] = []
    seen: set[str] = set()
    for source, item, raw in samples:
        if isinstance(item, SampleError):
            bad.append(QuarantineRecord.from_error(item, source, raw=raw))
            continue
        try:
            validate_sample(item, policy, decode=decode)
            if item.id in seen:
                raise SampleError(Reason.DUPLICATE_ID, item.id)
        except SampleError as err:
            bad.append(QuarantineRecord.from_error(err, source, item.id, raw))
            continue
        seen.add(item.id)
        good.append(item)
    return good, bad


def write_quarantine(records: Sequence[QuarantineRecord], out_dir: str | Path, name: str = "quarantine.parquet") -> Path | None:
    """Write quarantine records (if any) to `out_dir/quarantine/<name>`."""
    if not records:
        return None
    qdir = Path(out_dir) / "quarantine"
    qdir.mkdir(parents=True, exist_ok=True)
    path = qdir / name
    pq.write_table(pa.Table.from_pylist([r.to_row() for r in records], schema=QUARANTINE_SCHEMA), path)
    return path
