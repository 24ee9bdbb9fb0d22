"""`gradus store build`: scoring runs joined onto canonical samples as a difficulty store."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.config import ConfigError
from engine.shaping.store import ScoreSource, build_store, parse_namespace


@dataclass
class StoreConfig:
    samples: str = ""  # canonical shards; empty = add metrics to the store already at `output`
    output: str = ""  # store directory (manifest.json, unmatched.parquet, data/)
    sources: dict[str, ScoreSource] = field(default_factory=dict)  # namespace (pism, pism@7b, cmab, pass_rate...) -> run, e.g. sources.pism.path=...
    partition_by: list[str] | None = None  # hive directories, e.g. [domain, pism.stratum]; null = keep the store's ([domain] when new)
    replace: list[str] = field(default_factory=list)  # namespaces whose existing scores may be replaced by another run's
    rows_per_file: int = 4096  # sample rows per Ray Data block, joined and written at a time (memory bound; files split further by partition)
    actors: int = 0  # Ray Data actors joining blocks; 0 = one per CPU of the cluster
    local_below_rows: int = 20000  # fewer samples than this are joined in the calling process (same code, no Ray job start-up)

    def validate(self) -> None:
        for ns in self.sources:
            parse_namespace(ns)
        if self.rows_per_file < 1:
            raise ConfigError("rows_per_file must be >= 1")
        if self.actors < 0:
            raise ConfigError("actors must be >= 0 (0 = one per CPU)")

    def require_paths(self) -> None:
        if not self.output:
            raise ConfigError("store build: output is required (e.g. samples=path/to/shards sources.pism.path=outputs/pism output=outputs/store)")
        if not self.sources and not Path(self.output).exists():
            raise ConfigError("store build: no sources (e.g. sources.pism.path=outputs/pism)")


def run_store(cfg: StoreConfig) -> dict:
    cfg.require_paths()
    started = time.time()
    manifest = build_store(cfg.output, cfg.sources, samples=cfg.samples, partition_by=cfg.partition_by, replace=cfg.replace,
                           rows_per_file=cfg.rows_per_file, actors=cfg.actors,
                           local_below_rows=cfg.local_below_rows)
    return {
        "store": cfg.output,
        "rows": manifest["rows"],
        "partition_by": manifest["partition_by"],
        "sources": {ns: {k: s[k] for k in ("status", "strata", "unmatched", "provenance")} for ns, s in manifest["sources"].items()},
        "unmatched_rows": manifest["unmatched"]["rows"],
        "config_hash": manifest["config_hash"],
        "gradus_version": manifest["gradus_version"],
        "wall_s": round(time.time() - started, 2),
    }
