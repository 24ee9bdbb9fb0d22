"""The reformulation job (`gradus data reformulate`): canonical shards -> Curr-ReFT judge / choice /
open stage shards.

Reads every shard under `input` (a synth corpus root works: its train/val/test folders are read
together, and each variant stays in its source's split) and writes `output/<stage>/<split>/
part-*.parquet`, `output/quarantine/quarantine.parquet` and `output/summary.json`; the work itself
is engine/shaping/reformulate.py `reformulate_shards`.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine import __version__
from engine.config import ConfigError
from engine.shaping.reformulate import ReformulateConfig, reformulate_shards


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


def run_reformulate(cfg: ReformulateJobConfig) -> dict:
    cfg.require_paths()
    started = time.time()
    summary = reformulate_shards(cfg.input, cfg.output, cfg.reformulate, rows_per_shard=cfg.rows_per_shard)
    summary |= {"gradus_version": __version__, "wall_s": round(time.time() - started, 2)}
    (Path(cfg.output) / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
