"""Canonical parquet shards on disk, and the quarantine files beside them."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
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


def merge_sorted_shards(parts_dir: str | Path, out_dir: str | Path, *, rows_per_shard: int = 512, prefix: str = "part") -> list[Path]:
    """Rewrite the shards of `parts_dir` (each sorted by id, e.g. one per Ray Data block) as one id-ordered
    set `prefix-00000.parquet`, ... in `out_dir`, exactly as `write_shards` would write the sorted samples.

    Readers take shards in file order, so an output's order must not depend on which worker wrote which
    block. Only the id column is read up front; rows are then streamed one output shard at a time (each
    output shard takes a contiguous run of every input, because every input is sorted), so memory stays
    bounded by a shard plus one read batch per input."""
    files = shard_paths(parts_dir)
    ids = [pq.read_table(f, columns=["id"]).column("id") for f in files]
    for f, col in zip(files, ids):
        if len(col) > 1 and not pc.all(pc.less(col.slice(0, len(col) - 1), col.slice(1))).as_py():
            raise ValueError(f"{f}: ids are not strictly ascending; merge_sorted_shards needs sorted, unique ids per input")
    source = np.repeat(np.arange(len(files)), [len(c) for c in ids])
    if not len(source):
        return write_shards([], out_dir, rows_per_shard=rows_per_shard, prefix=prefix)
    order = pc.sort_indices(pa.chunked_array([c.combine_chunks() for c in ids])).to_numpy()
    source = source[order]
    batches = [pq.ParquetFile(f).iter_batches(batch_size=rows_per_shard) for f in files]
    held: list[pa.Table | None] = [None] * len(files)

    def take(i: int, n: int) -> pa.Table:
        while held[i] is None or held[i].num_rows < n:
            more = pa.Table.from_batches([next(batches[i])])
            held[i] = more if held[i] is None else pa.concat_tables([held[i], more])
        rows, held[i] = held[i].slice(0, n), held[i].slice(n)
        return rows

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, start in enumerate(range(0, len(source), rows_per_shard)):
        counts = np.bincount(source[start : start + rows_per_shard], minlength=len(files))
        chunk = pa.concat_tables([take(i, int(n)).cast(SAMPLE_SCHEMA) for i, n in enumerate(counts) if n])
        path = out / f"{prefix}-{index:05d}.parquet"
        pq.write_table(chunk.take(pc.sort_indices(chunk, [("id", "ascending")])), path)
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


@dataclass(frozen=True)
class DuplicateCopy:
    """A row whose id an earlier row already has: never read, recorded as `duplicate_id`."""

    id: str
    task: str | None
    split: str | None
    where: str  # "<shard> row <n>" of this copy
    kept: str  # where the copy that is read lies

    def record(self) -> dict:
        """The id, task, split and error columns every pipeline's output rows share."""
        detail = f"{self.where} repeats id {self.id!r}; only its first copy ({self.kept}) is read"
        return {"id": self.id, "task": self.task, "split": self.split, "error": Reason.DUPLICATE_ID.value, "error_detail": detail}


@dataclass(frozen=True)
class ShardIndex:
    """Which rows of a set of shards a job reads: each id once, at its first copy in `shard_paths`
    order and then row order (the rule `validate_all` applies at conversion), so which copy is read
    never depends on how the files were listed or split; later copies are `duplicates`."""

    paths: tuple[Path, ...]
    rows: tuple[tuple[int, ...], ...]  # per path: the row numbers read, ascending
    ids: tuple[str, ...]  # the ids read, in that order
    tasks: tuple[str | None, ...]
    duplicates: tuple[DuplicateCopy, ...]

    def __len__(self) -> int:
        return len(self.ids)

    def restrict(self, keep: Iterable[str]) -> "ShardIndex":
        """Only the rows (and duplicate copies) whose id is in `keep`."""
        keep = set(keep)
        ids = iter(self.ids)
        rows = tuple(tuple(r for r, i in zip(file_rows, ids) if i in keep) for file_rows in self.rows)
        pairs = [(i, t) for i, t in zip(self.ids, self.tasks) if i in keep]
        return ShardIndex(self.paths, rows, tuple(i for i, _ in pairs), tuple(t for _, t in pairs),
                          tuple(d for d in self.duplicates if d.id in keep))

    def head(self, n: int) -> "ShardIndex":
        """The first `n` rows read (0: all)."""
        return self.restrict(self.ids[:n]) if n else self


def index_shards(path: str | Path) -> ShardIndex:
    """Read only the id, task and split columns of every shard under `path` and decide which rows are read."""
    paths = shard_paths(path)
    first: dict[str, str] = {}
    rows, ids, tasks, duplicates = [], [], [], []
    for p in paths:
        table = _id_columns(p)
        kept = []
        for n, (rid, task, split) in enumerate(zip(*(table.column(c).to_pylist() for c in ("id", "task", "split")))):
            rid, where = str(rid), f"{p} row {n}"  # str(): as every pipeline reads the id
            if rid in first:
                duplicates.append(DuplicateCopy(rid, _text(task), _text(split), where, first[rid]))
                continue
            first[rid] = where
            kept.append(n)
            ids.append(rid)
            tasks.append(_text(task))
        rows.append(tuple(kept))
    return ShardIndex(tuple(paths), tuple(rows), tuple(ids), tuple(tasks), tuple(duplicates))


def _text(value) -> str | None:
    return None if value is None else str(value)


def _id_columns(path: Path) -> pa.Table:
    """id, task, split of one shard (task/split null where a foreign shard lacks them)."""
    pf = pq.ParquetFile(path)
    names = pf.schema_arrow.names
    if "id" not in names:
        raise ValueError(f"{path} has no id column: not a canonical shard (gradus data convert writes them)")
    table = pf.read(columns=[c for c in ("id", "task", "split") if c in names])
    for c in ("task", "split"):
        if c not in names:
            table = table.append_column(c, pa.nulls(table.num_rows, pa.string()))
    return table


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
