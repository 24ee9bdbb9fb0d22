"""`gradus data export` at scale: canonical shards -> a trainer's files as a Ray Data job.

The writers (WRITERS) take a list of samples; here the shards stream through Ray Data instead:
a first pass checks every sample (a bad one stops the export before anything is written, as the
writers do), a second turns each block into part files beside the output (its images saved where
the final files expect them), and the parts are then appended, in the shards' own order, into the
files the writer would have made (`train.parquet`, `val.jsonl`, ... or the one file named).
"""
from __future__ import annotations

import functools
import shutil
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from engine.data.images import ImagePolicy
from engine.data.sample import SAMPLE_SCHEMA, SPLITS, Sample
from engine.data.shards import shard_paths
from engine.data.stream import block_tag, run_blocks

from engine.data.formats.llamafactory import DATASET_INFO, _existing_dataset_info, conversation, dataset_entry, llamafactory_row
from engine.data.formats.output import checked, write_jsonl
from engine.data.formats.swift import swift_row
from engine.data.formats.verl import verl_row, verl_schema

SUFFIX = {"verl": ".parquet", "swift": ".jsonl", "llamafactory": ".jsonl"}
ORDER = "_order"  # a block's rows' place in the input: (shard, row), so parts append in the shards' order


def export_shards(fmt: str, shards: str | Path, out_path: str | Path, *, image_roots: tuple[str, ...] = (), rows_per_block: int = 1024,
                  actors: int = 0, local_below_rows: int = 20000) -> list[Path]:
    """Write the samples of `shards` as `fmt` at `out_path` (a file with the format's suffix, or a
    directory with one file per split); returns the paths written. Images stored as paths are read
    under `image_roots` (none: only embedded bytes). Inputs under `local_below_rows` rows are exported
    in this process by the same code."""
    if fmt not in SUFFIX:
        raise KeyError(f"unknown output format {fmt!r}; known: {sorted(SUFFIX)}")
    files = [str(p) for p in shard_paths(shards)]
    out = Path(out_path)
    single = out.suffix == SUFFIX[fmt]
    base = out.parent if single else out
    read = functools.partial(_read_ordered, order={p: i for i, p in enumerate(files)})
    run = functools.partial(run_blocks, files, rows_per_block, read, actors=actors, local_below_rows=local_below_rows, bundle=False)
    rows = sum(pc.sum(r.column("rows")).as_py() or 0 for r in run(_CheckBlock, {"fmt": fmt}))
    if not rows:
        from engine.data.formats import write_records

        return write_records(fmt, [], out)  # the writer's empty file: a schema to read
    parts_dir = base / f".gradus-parts-{uuid.uuid4().hex[:8]}"
    try:
        kwargs = {"fmt": fmt, "base": str(base), "parts": str(parts_dir), "single": out.name if single else "", "roots": tuple(image_roots)}
        parts: dict[str, list[tuple[str, str]]] = {}
        for result in run(_WriteBlock, kwargs):
            for name, key, part in zip(*(result.column(c).to_pylist() for c in ("file", "key", "part"))):
                parts.setdefault(name, []).append((key, part))
        written = [_append(fmt, base / name, [p for _, p in sorted(found)]) for name, found in sorted(parts.items(), key=_split_order)]
    finally:
        shutil.rmtree(parts_dir, ignore_errors=True)
    if fmt == "llamafactory":
        written.append(_dataset_info(base, written))
    return written


def _read_ordered(path: str, order: dict[str, int]) -> pa.Table:
    table = pq.read_table(path, schema=SAMPLE_SCHEMA)
    return table.append_column(ORDER, pa.array([f"{order[path]:08d}-{i:012d}" for i in range(table.num_rows)], pa.string()))


def _samples(block: pa.Table) -> list[Sample]:
    return [Sample.from_row(row) for row in block.drop_columns([ORDER]).to_pylist()]


class _CheckBlock:
    """Ray Data actor: every sample of a block checked as the format's writer checks it."""

    def __init__(self, fmt: str):
        self.fmt = fmt

    def __call__(self, block: pa.Table) -> pa.Table:
        for sample in _samples(block):
            checked(sample)
            if self.fmt == "llamafactory":
                conversation(sample)
        return pa.table({"rows": [block.num_rows]})


class _WriteBlock:
    """Ray Data actor: one block's records as a part file per output file (images saved beside the outputs)."""

    def __init__(self, fmt: str, base: str, parts: str, single: str, roots: tuple[str, ...]):
        self.fmt, self.base, self.parts, self.single = fmt, Path(base), Path(parts), single
        self.policy = ImagePolicy(roots=roots)

    def __call__(self, block: pa.Table) -> pa.Table:
        block = block.take(pc.sort_indices(block, [(ORDER, "ascending")]))
        key = block.column(ORDER)[0].as_py()
        samples = _samples(block)
        groups: dict[str, list[Sample]] = {}
        for s in samples:
            groups.setdefault(self.single or f"{s.split}{SUFFIX[self.fmt]}", []).append(s)
        rows = {"file": [], "key": [], "part": []}
        for name, group in groups.items():
            part = self.parts / f"{Path(name).stem}-{block_tag(block.column('id'))}{SUFFIX[self.fmt]}"
            self._write(part, group)
            rows["file"].append(name)
            rows["key"].append(key)
            rows["part"].append(str(part))
        return pa.table(rows)

    def _write(self, part: Path, group: list[Sample]) -> None:
        part.parent.mkdir(parents=True, exist_ok=True)
        if self.fmt == "verl":
            pq.write_table(pa.Table.from_pylist([verl_row(s, 0, self.policy) for s in group], schema=verl_schema()), part)
        elif self.fmt == "swift":
            write_jsonl(part, (swift_row(s, self.base, self.policy) for s in group))
        else:
            write_jsonl(part, (llamafactory_row(s, self.base, self.policy) for s in group))


def _split_order(item: tuple[str, Any]) -> tuple[int, str]:
    stem = Path(item[0]).stem
    return (SPLITS.index(stem) if stem in SPLITS else len(SPLITS), item[0])


def _append(fmt: str, path: Path, parts: list[str]) -> Path:
    """Parts -> one file, streamed part by part; verl's extra_info.index counts rows across the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt != "verl":
        with open(path, "wb") as out:
            for part in parts:
                with open(part, "rb") as fh:
                    shutil.copyfileobj(fh, out)
        return path
    schema, offset = verl_schema(), 0
    with pq.ParquetWriter(path, schema) as writer:
        for part in parts:
            table = pq.read_table(part, schema=schema)
            writer.write_table(_reindexed(table, offset))
            offset += table.num_rows
    return path


def _reindexed(table: pa.Table, offset: int) -> pa.Table:
    extra = table.column("extra_info").combine_chunks()
    fields = [extra.field(i) for i in range(extra.type.num_fields)]
    fields[extra.type.get_field_index("index")] = pa.array(range(offset, offset + table.num_rows), pa.int64())
    rebuilt = pa.StructArray.from_arrays(fields, fields=list(extra.type))
    return table.set_column(table.column_names.index("extra_info"), "extra_info", rebuilt)


def _dataset_info(base: Path, written: list[Path]) -> Path:
    """LLaMA-Factory's dataset_info.json beside the files: entries added, a user's others kept."""
    import json

    info_path = base / DATASET_INFO
    info = _existing_dataset_info(info_path)
    for path in written:
        info[f"gradus_{path.stem}"] = dataset_entry(path.name)
    info_path.write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return info_path
