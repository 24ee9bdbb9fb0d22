"""Ray Data building blocks of the jobs that reshape a corpus (store build, select, export).

Each job streams the corpus (rows with their image bytes) through Ray Data in blocks and writes
every block from the worker that holds it; only small per-id columns (ids, scores, membership)
travel as one table, shared read-only through Ray's object store and indexed once per actor.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

READ_BATCH_ROWS = 256  # rows per parquet read batch (image bytes included): bounds a read task's memory


def file_blocks(paths: Sequence[str | Path], rows_per_block: int, read: Callable[[str], pa.Table] | None = None):
    """A Ray dataset of the rows of `paths`, one read task per file, in blocks of at most
    `rows_per_block` rows (in no guaranteed order). `read(path)` gives a file's table; default: parquet."""
    import ray.data

    items = [{"path": str(p)} for p in paths]
    return ray.data.from_items(items, override_num_blocks=max(len(items), 1)).map_batches(
        _read_files, batch_size=1, batch_format="pyarrow", fn_kwargs={"rows": rows_per_block, "read": read})


def run_blocks(paths: Sequence[str | Path], rows_per_block: int, read: Callable[[str], pa.Table] | None, fn: type, kwargs: dict,
               actors: int, local_below_rows: int, bundle: bool = True) -> Iterator[pa.Table]:
    """Apply `fn(**kwargs)` (a block -> small result table class) to every block of `paths`, yielding
    the results: as a Ray Data job over an actor pool, or, for inputs under `local_below_rows` rows
    (a Ray job's start-up costs more than the work), in this process, block by block. `bundle`
    lets Ray join small blocks (one store partition file each) into blocks of about `rows_per_block`
    rows; without it every block holds consecutive rows of one file."""
    if not paths:
        return
    if sum(_row_count(p) for p in paths) < local_below_rows:
        worker = fn(**kwargs)
        for path in paths:
            for block in _read_files(pa.table({"path": [str(path)]}), rows_per_block, read):
                yield worker(block)
        return
    ensure_ray()
    kwargs = {k: share(v) if isinstance(v, Shared) else v for k, v in kwargs.items()}
    blocks = file_blocks(paths, rows_per_block, read)
    # batch_size: small files (one partition of a store each) are bundled into blocks of about rows_per_block rows
    results = blocks.map_batches(fn, batch_size=rows_per_block if bundle else None, batch_format="pyarrow", zero_copy_batch=True, fn_constructor_kwargs=kwargs,
                                 **actor_pool(actors))
    yield from results.iter_batches(batch_size=None, batch_format="pyarrow")


class Shared:
    """A value for `run_blocks` to hand every actor through Ray's object store (once, not per actor)."""

    def __init__(self, value: Any):
        self.value = value

    def get(self) -> Any:
        return self.value


def _row_count(path: str | Path) -> int:
    return pq.ParquetFile(str(path)).metadata.num_rows


def _read_files(batch: pa.Table, rows: int, read: Callable[[str], pa.Table] | None):
    for path in batch.column("path").to_pylist():
        if read is not None:
            table = read(path)
            for start in range(0, table.num_rows, rows):
                yield table.slice(start, rows)
            continue
        pf = pq.ParquetFile(path)
        pending: list[pa.RecordBatch] = []
        count = 0
        for rb in pf.iter_batches(batch_size=min(rows, READ_BATCH_ROWS)):
            pending.append(rb)
            count += rb.num_rows
            if count >= rows:
                yield pa.Table.from_batches(pending)
                pending, count = [], 0
        if pending:
            yield pa.Table.from_batches(pending)


def block_tag(ids: pa.Array | pa.ChunkedArray) -> str:
    """A name for one block's output files: the hash of its first id (ids are unique, so are tags)
    and the same blocks give the same names on every run."""
    first = ids[0].as_py() if len(ids) else ""
    return hashlib.sha1(str(first).encode()).hexdigest()[:12]


def share(value: Shared) -> "Shared":
    """`value` put in Ray's object store, wrapped so Ray passes the reference (not the value) to actors."""
    import ray

    return _SharedRef([ray.put(value.value)])


class _SharedRef(Shared):
    def get(self) -> Any:
        import ray

        return ray.get(self.value[0])


class IdIndex:
    """Position of each id of a table's `id` column, built once; `positions` looks a block's ids up."""

    def __init__(self, ids: pa.Array | pa.ChunkedArray):
        import pandas as pd

        self.index = pd.Index(ids.to_pandas() if len(ids) else [], dtype=object)
        if not self.index.is_unique:
            raise ValueError("IdIndex: ids repeat")

    def positions(self, ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Row of each id in the table, -1 where absent."""
        if not len(ids) or not len(self.index):
            return np.full(len(ids), -1, dtype=np.int64)
        return self.index.get_indexer(ids.to_pandas().astype(object)).astype(np.int64)


def take_rows(table: pa.Table, positions: np.ndarray) -> pa.Table:
    """Rows of `table` at `positions`; a null row where a position is -1."""
    return table.take(pa.array(positions, mask=positions < 0, type=pa.int64()))


def actor_pool(actors: int):
    """map_batches arguments for a pool of `actors` actors of one CPU each (0 = one per CPU of the cluster)."""
    import ray
    import ray.data

    if actors <= 0:
        actors = max(1, int(ray.cluster_resources().get("CPU", 1)))
    return {"compute": ray.data.ActorPoolStrategy(min_size=1, max_size=actors), "num_cpus": 1}


def ensure_ray() -> None:
    """Join or start Ray (engine.ray_session's defaults) for a job called as a library function."""
    import ray

    if not ray.is_initialized():
        from engine.ray_session import init_ray

        init_ray()
