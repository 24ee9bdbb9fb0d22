"""GRPO data: the one verl-format parquet both backends read.

`data.train` / `data.val` may be canonical shards (exported here with gradus's verl writer, images
embedded, difficulty tags in extra_info) or a verl parquet file already. Exported files are
checked to be non-empty: verl drops every row without an error when its processor fails.
"""
from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from engine.config import ConfigError
from engine.data.formats.verl import is_verl_file, write_verl
from engine.data.images import ImagePolicy
from engine.data.sample import Sample
from engine.data.shards import shard_paths, validate_all


def _rows(path: Path):
    """(source, sample or error, raw) for validate_all: a malformed row becomes a quarantine record."""
    from engine.data.reasons import SampleError
    from engine.data.sample import SAMPLE_SCHEMA

    for shard in shard_paths(path):
        for i, row in enumerate(pq.read_table(shard, schema=SAMPLE_SCHEMA).to_pylist()):
            try:
                yield f"{shard}:{i}", Sample.from_row(row), None
            except SampleError as err:
                yield f"{shard}:{i}", err, row


def verl_parquet(source: str, out_dir: Path, name: str, max_pixels: int = 0) -> Path:
    """A verl parquet for `source` (canonical shards or a verl file), written under out_dir when exported."""
    path = Path(source)
    if not path.exists():
        raise ConfigError(f"grpo data {source} does not exist")
    if is_verl_file(path):
        return path
    samples, quarantined = validate_all(_rows(path), ImagePolicy())
    if quarantined:
        reasons = sorted({q.reason.value for q in quarantined})
        raise ConfigError(f"grpo data {source}: {len(quarantined)} bad records ({', '.join(reasons)}); fix or filter them first")
    if not samples:
        raise ConfigError(f"grpo data {source}: no samples")
    out = out_dir / f"{name}.parquet"
    write_verl(samples, out, max_pixels=max_pixels or None)
    rows = pq.read_metadata(out).num_rows
    if rows != len(samples):
        raise RuntimeError(f"verl export of {source} wrote {rows} rows for {len(samples)} samples")
    return out
