"""Which input rows a job reads (engine/data/shards.py `index_shards`, pipelines/inputs.py `read_shard_rows`):
the shards `shard_paths` lists (never a converter's quarantine/), each id once at its first copy in
path order and then row order, whatever order the files were written in; later copies are records."""
import os

import numpy as np
import pytest
import pyarrow as pa
import pyarrow.parquet as pq

from engine.data.reasons import QuarantineRecord
from engine.data.sample import Message, Sample
from engine.data.shards import index_shards, write_quarantine, write_shards
from pipelines.inputs import read_shard_rows


def _sample(sid: str, task: str) -> Sample:
    return Sample(sid, [], [Message("user", "What is 1+2?")], "3", task, "numeric")


def _folder(tmp_path):
    """part-1 is written before part-0 (and gets the older mtime): listing order must not matter."""
    folder = tmp_path / "shards"
    write_shards([_sample("b", "second-file"), _sample("x", "x"), _sample("x", "x-again")], folder, prefix="part-1")
    os.utime(folder / "part-1-00000.parquet", (1, 1))
    write_shards([_sample("a", "a"), _sample("b", "first-file")], folder, prefix="part-0")
    write_quarantine([QuarantineRecord("bad_json", "line 3", "in.jsonl:3", "q1", "{")], folder)
    return folder


def test_quarantine_folder_is_not_input_and_first_copies_are_read(tmp_path):
    folder = _folder(tmp_path)
    index = index_shards(folder)
    assert [p.name for p in index.paths] == ["part-0-00000.parquet", "part-1-00000.parquet"]  # quarantine/ is not a shard
    assert index.ids == ("a", "b", "x") and index.tasks == ("a", "first-file", "x")
    assert index.rows == ((0, 1), (1,))
    dups = [d.record() for d in index.duplicates]
    assert [(d["id"], d["task"], d["error"]) for d in dups] == [("b", "second-file", "duplicate_id"), ("x", "x-again", "duplicate_id")]
    assert "part-1-00000.parquet row 0" in dups[0]["error_detail"] and "part-0-00000.parquet row 1" in dups[0]["error_detail"]
    assert "part-1-00000.parquet row 2" in dups[1]["error_detail"] and "part-1-00000.parquet row 1" in dups[1]["error_detail"]


def test_restrict_keeps_rows_and_duplicates_of_the_kept_ids(tmp_path):
    index = index_shards(_folder(tmp_path))
    first = index.head(2)
    assert first.ids == ("a", "b") and first.rows == ((0, 1), ()) and [d.id for d in first.duplicates] == ["b"]
    assert index.head(0) is index and len(index.restrict(["x"])) == 1


def test_read_shard_rows_reads_exactly_the_picked_rows_in_schema(tmp_path):
    folder = _folder(tmp_path)
    index = index_shards(folder)
    rows = [r for p, picked in zip(index.paths, index.rows) for t in read_shard_rows(str(p), np.asarray(picked, dtype=np.int64))
            for r in t.to_pylist()]
    assert [(r["id"], r["task"]) for r in rows] == [("a", "a"), ("b", "first-file"), ("x", "x")]


def test_a_foreign_shard_is_cast_to_the_sample_schema(tmp_path):
    """large_string columns and a missing optional column: read as SAMPLE_SCHEMA (null where absent)."""
    path = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"id": pa.array(["f"], pa.large_string()), "messages": [[{"role": "user", "content": "Q?"}]],
                             "answer": ["1"], "task": ["t"], "verifier": ["numeric"]}), path)
    (table,) = read_shard_rows(str(path), np.asarray([0]))
    assert table.schema.field("id").type == pa.string() and table.column("meta").to_pylist() == [None]


def test_parts_from_many_workers_merge_into_one_id_ordered_set(tmp_path):
    """select's publish step: per-block parts (each sorted) -> the files a single writer would have written."""
    from engine.data.shards import merge_sorted_shards, read_table

    ids = [f"s{n:03d}" for n in range(23)]
    parts = tmp_path / "parts"
    for block, members in enumerate((ids[0::3], ids[1::3], ids[2::3])):  # interleaved id ranges, as store partitions give
        write_shards([_sample(i, "count") for i in members], parts, rows_per_shard=3, prefix=f"part-{block}")
    written = merge_sorted_shards(parts, tmp_path / "out", rows_per_shard=5)
    assert [p.name for p in written] == [f"part-{n:05d}.parquet" for n in range(5)]
    assert [pq.ParquetFile(p).metadata.num_rows for p in written] == [5, 5, 5, 5, 3]
    merged = read_table(tmp_path / "out")
    single = read_table(write_shards([_sample(i, "count") for i in ids], tmp_path / "single", rows_per_shard=5)[0].parent)
    assert merged.equals(single)


def test_merge_refuses_parts_that_are_not_sorted(tmp_path):
    from engine.data.shards import merge_sorted_shards

    write_shards([_sample(i, "count") for i in ("b", "a")], tmp_path / "parts")
    with pytest.raises(ValueError, match="not strictly ascending"):
        merge_sorted_shards(tmp_path / "parts", tmp_path / "out")
