"""`gradus data convert|export|pass-rates`: files in and out of gradus's canonical shards, as recipes.

- convert: a foreign corpus (engine/data/formats READERS) -> canonical shards, bad records to quarantine/;
- export: canonical shards -> a trainer's files (WRITERS), a Ray Data job for large inputs;
- pass-rates: verl's rollout dump -> pass_rates.parquet per sample id for `gradus store build`.

Each command's paths and format are empty in its default config: the run says which are missing.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from engine.config import ConfigError
from engine.data.formats import READERS, WRITERS, read_records
from engine.data.formats.export import export_shards
from engine.data.images import ImagePolicy
from engine.data.sample import SPLITS
from engine.data.shards import write_quarantine, write_shards
from rl.grpo.rollout_log import verl_pass_rates


def _known(name: str, table: dict) -> None:
    if name and name not in table:
        raise ConfigError(f"format {name!r} is not one of: {', '.join(table)}")


def _require(recipe: str, cfg: object, fields: dict[str, str]) -> None:
    """The fields a run needs (empty in the default config), named by flag and by key."""
    missing = [f"{flag} ({key}=...)" for key, flag in fields.items() if not getattr(cfg, key)]
    if missing:
        raise ConfigError(f"{recipe}: missing {', '.join(missing)}")


@dataclass
class ConvertConfig:
    format: str = ""  # input format (--from): vtriune, difficulty_sampling, swift, curr_reft, verl
    input: str = ""  # a file or a directory of them in that format
    out: str = ""  # output directory: canonical shards, and quarantine/ for rejected records
    images: ImagePolicy = field(default_factory=ImagePolicy)  # roots (--image-root; none: the input's own directory) and decoding limits
    split: str = "train"  # split given to records that name none

    def validate(self) -> None:
        _known(self.format, READERS)
        if self.split not in SPLITS:
            raise ConfigError(f"split {self.split!r} is not one of {SPLITS}")

    def require_paths(self) -> None:
        _require("data convert", self, {"format": "--from", "input": "--input", "out": "--out"})


@dataclass
class ExportConfig:
    format: str = ""  # output format (--to): verl, swift, llamafactory
    input: str = ""  # canonical shards (a directory, or one parquet file)
    out: str = ""  # a file with the format's suffix, or a directory with one file per split
    image_roots: list[str] = field(default_factory=list)  # where path-only images are read; none: only embedded images are written
    rows_per_block: int = 1024  # rows a Ray Data block converts at a time (memory bound)
    actors: int = 0  # Ray Data actors converting blocks; 0 = one per CPU of the cluster
    local_below_rows: int = 20000  # inputs with fewer rows are exported in this process (same code, no Ray job start-up)

    def validate(self) -> None:
        _known(self.format, WRITERS)
        ImagePolicy(roots=tuple(self.image_roots)).validate()  # the roots the export reads under: no empty one
        if self.rows_per_block < 1:
            raise ConfigError(f"rows_per_block must be >= 1, got {self.rows_per_block}")
        if self.actors < 0 or self.local_below_rows < 0:
            raise ConfigError(f"actors (0 = one per CPU) and local_below_rows must be >= 0, got {self.actors}, {self.local_below_rows}")

    def require_paths(self) -> None:
        _require("data export", self, {"format": "--to", "input": "--input", "out": "--out"})


@dataclass
class PassRatesConfig:
    rollouts: str = ""  # verl's rollout_data_dir (<step>.jsonl files)
    output: str = ""  # pass_rates.parquet to write
    data: str = ""  # the verl parquet trained on: every dumped id must be one of its extra_info.id; "" = not checked
    run_dir: str = ""  # the run's output_dir (verl_run.json: provenance); "" = the dump's parent
    model_id: str = ""  # model id recorded per row; "" = the run's provenance
    config_hash: str = ""  # config hash recorded per row; "" = the run's provenance
    seed: int | None = None  # seed recorded per row; null = the run's provenance
    stage: str = ""  # stage name recorded per row; "" = the run folder's name

    def require_paths(self) -> None:
        _require("data pass-rates", self, {"rollouts": "--rollouts", "output": "--output"})


def run_convert(cfg: ConvertConfig) -> dict:
    cfg.require_paths()
    samples, quarantined = read_records(cfg.format, cfg.input, cfg.images, split=cfg.split)
    written = write_shards(samples, cfg.out)
    qpath = write_quarantine(quarantined, cfg.out)
    return {"samples": len(samples), "shards": [str(p) for p in written], "quarantined": len(quarantined),
            "reasons": dict(Counter(q.reason for q in quarantined)), "quarantine_file": str(qpath) if qpath else None}


def run_export(cfg: ExportConfig) -> dict:
    cfg.require_paths()
    paths = export_shards(cfg.format, cfg.input, cfg.out, image_roots=tuple(cfg.image_roots), rows_per_block=cfg.rows_per_block,
                          actors=cfg.actors, local_below_rows=cfg.local_below_rows)
    return {"written": [str(p) for p in paths]}


def run_pass_rates(cfg: PassRatesConfig) -> dict:
    cfg.require_paths()
    return verl_pass_rates(cfg.rollouts, cfg.output, data=cfg.data, run_dir=cfg.run_dir, model_id=cfg.model_id,
                           config_hash=cfg.config_hash, seed=cfg.seed, stage=cfg.stage)
