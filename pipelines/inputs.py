"""How every pipeline reads its input: one listing rule, each id once.

`index_shards` (engine/data/shards.py) lists the shards as `shard_paths` does, so a converter's
`quarantine/` folder is never read as samples, and picks each id's first copy; later copies
become `duplicate_id` records. `read_rows` then reads exactly the picked rows as a Ray dataset:
one read task per shard, streamed in small batches, every batch cast to SAMPLE_SCHEMA so all
blocks agree whatever wrote the files.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from engine.data.sample import SAMPLE_SCHEMA
from engine.data.shards import ShardIndex

READ_BATCH_ROWS = 64  # rows per parquet read batch (image bytes included): bounds a read task's memory


def read_rows(index: ShardIndex):
    """The rows `index` picks, as a Ray dataset of SAMPLE_SCHEMA (in no guaranteed order)."""
    import ray.data

    files = [{"path": str(p), "rows": list(rows)} for p, rows in zip(index.paths, index.rows) if rows]
    if not files:
        return ray.data.from_arrow(SAMPLE_SCHEMA.empty_table())
    return ray.data.from_items(files, override_num_blocks=len(files)).map_batches(_read_files, batch_size=1, batch_format="pyarrow")


def job_rows(index: ShardIndex, done: set[str], rows_per_block: int):
    """(dataset of the picked rows not yet in `done`, how many) for one resumable output, in
    blocks of `rows_per_block` (the unit of streaming writes and of resume)."""
    todo = index.restrict(i for i in index.ids if i not in done)
    return read_rows(todo).repartition(target_num_rows_per_block=rows_per_block), len(todo)


def _read_files(batch: pa.Table):
    for path, rows in zip(batch.column("path").to_pylist(), batch.column("rows").to_pylist()):
        yield from read_shard_rows(path, np.asarray(rows, dtype=np.int64))


def read_shard_rows(path: str, rows: np.ndarray):
    """Tables of the given rows (ascending row numbers) of one shard, batch by batch."""
    pf = pq.ParquetFile(path)
    columns = [c for c in SAMPLE_SCHEMA.names if c in pf.schema_arrow.names]
    start = 0
    for batch in pf.iter_batches(batch_size=READ_BATCH_ROWS, columns=columns):
        stop = start + batch.num_rows
        lo, hi = np.searchsorted(rows, [start, stop])
        if hi > lo:
            yield canonical(pa.Table.from_batches([batch]).take(rows[lo:hi] - start), path)
        start = stop


def canonical(table: pa.Table, path: str) -> pa.Table:
    """`table` with SAMPLE_SCHEMA's columns and types (a column the file lacks is null: the actors'
    checks then say what is missing, row by row)."""
    arrays = []
    for f in SAMPLE_SCHEMA:
        if f.name not in table.column_names:
            arrays.append(pa.nulls(table.num_rows, f.type))
            continue
        try:
            arrays.append(table.column(f.name).cast(f.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise ValueError(f"{path}: column {f.name} is {table.column(f.name).type}, not {f.type}: not a canonical shard") from exc
    return pa.Table.from_arrays(arrays, schema=SAMPLE_SCHEMA)
