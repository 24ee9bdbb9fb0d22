"""The reformulation job: canonical shards -> Curr-ReFT judge / choice / open stage shards.

Reads every shard under `input` (a synth corpus root works: its train/val/test folders are read
together, and each variant stays in its source's split), checks rows structurally (images are
carried, not decoded), reformulates (engine/shaping/reformulate.py) and writes
`output/<stage>/<split>/part-*.parquet`, `output/quarantine/quarantine.parquet` (bad input rows and
sources without a variant, each with a reason) and `output/summary.json`. Stage folders are
replaced whole, so a rerun never mixes shards of two runs.
"""
from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pyarrow.parquet as pq

from engine import __version__
from engine.config import ConfigError
from engine.data.images import ImagePolicy
from engine.data.reasons import QuarantineRecord, SampleError
from engine.data.sample import SAMPLE_SCHEMA, Sample
from engine.data.shards import shard_paths, validate_all, write_quarantine, write_shards
from engine.publish import publish_dir
from engine.shaping.reformulate import STAGES, ReformulateConfig, reformulate


@dataclass
class ReformulateJobConfig:
    input: str = ""  # canonical parquet shards: a file or a directory (e.g. a synth corpus root with train/val/test)
    output: str = ""  # output directory: <stage>/<split>/part-*.parquet, quarantine/, summary.json
    reformulate: ReformulateConfig = field(default_factory=ReformulateConfig)
    rows_per_shard: int = 512  # rows per written parquet file

    def validate(self) -> None:
        if self.rows_per_shard < 1:
            raise ConfigError("rows_per_shard must be >= 1")

    def require_paths(self) -> None:
        if not self.input or not self.output:
            raise ConfigError("data reformulate: input and output are required (e.g. input=path/to/shards output=outputs/reformulate)")


def read_sources(path: str | Path) -> tuple[list[Sample], list[QuarantineRecord]]:
    """Rows of every shard under `path` -> structurally valid samples + quarantine records (file:row)."""

    def rows() -> Iterator[tuple[str, Sample | SampleError, object]]:
        for shard in shard_paths(path):
            for index, row in enumerate(pq.read_table(shard, schema=SAMPLE_SCHEMA).to_pylist()):
                where = f"{shard}:{index}"
                try:
                    yield where, Sample.from_row(row), None
                except SampleError as err:
                    yield where, err, {k: v for k, v in row.items() if k != "images"}

    return validate_all(rows(), ImagePolicy(), decode=False)


def _publish(out: Path, stage: str, rows: list[Sample], splits: list[str], rows_per_shard: int) -> dict[str, int]:
    """Write one stage's shards per split into a temporary folder, then swap it in for the old one."""
    with publish_dir(out / stage, partial=out / f".{stage}.tmp") as tmp:  # hidden: out/ lists only the stages
        written = {split: len(write_shards([s for s in rows if s.split == split], tmp / split, rows_per_shard=rows_per_shard))
                   for split in splits}
    return written


def run_reformulate(cfg: ReformulateJobConfig) -> dict:
    cfg.require_paths()
    started = time.time()
    sources, bad_input = read_sources(cfg.input)
    result = reformulate(sources, cfg.reformulate)
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    splits = sorted({s.split for s in sources})
    shard_files = {stage: _publish(out, stage, rows, splits, cfg.rows_per_shard) for stage, rows in result.stages.items()}
    for stage in set(STAGES) - set(result.stages):  # a stage this run did not build must not linger from an earlier run
        shutil.rmtree(out / stage, ignore_errors=True)
    stale = out / "quarantine" / "quarantine.parquet"
    stale.unlink(missing_ok=True)
    quarantine_file = write_quarantine(bad_input + result.quarantined, out)
    summary = {
        "input": cfg.input,
        "output": str(out),
        "sources": len(sources),
        "bad_input": dict(Counter(q.reason for q in bad_input)),
        **result.summary(),  # counts, judge balance, quarantined per stage, seed, config_hash
        "shard_files": shard_files,
        "quarantine_file": str(quarantine_file) if quarantine_file else None,
        "gradus_version": __version__,
        "wall_s": round(time.time() - started, 2),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
