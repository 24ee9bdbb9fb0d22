"""config: `gradus train curriculum` -- a chain of SFT / GRPO stages run as one resumable job.

Each stage names its own recipe YAML (configs/sft/*.yaml or configs/grpo/*.yaml) plus dotted
overrides, optionally its own data, and a stop criterion; the curriculum sets the stage's model
(the previous stage's final HF folder), output folder and seed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from engine.config import ConfigError
from engine.paths import repo_path
from engine.tracking import WandbConfig

KINDS = ("sft", "grpo")
SET_BY_CURRICULUM = {"model_path", "output_dir"}  # recipe keys a stage override may not set
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class StageStop:
    max_steps: int = 0  # 0: the stage recipe's own steps / epochs (sft: max_steps, grpo: algorithm.steps)
    reward_at_least: float = 0.0  # grpo (trl): stop once mean reward over the last `window` logged steps >= this (0: off)
    loss_at_most: float = 0.0  # sft: stop once mean loss over the last `window` steps (all workers) <= this (0: off)
    window: int = 5  # logged steps averaged by reward_at_least / loss_at_most

    def validate(self) -> None:
        if self.max_steps < 0 or self.window < 1 or self.loss_at_most < 0:
            raise ConfigError("stage stop: need max_steps >= 0, window >= 1, loss_at_most >= 0")


@dataclass
class StageConfig:
    name: str = ""  # the stage folder is <output_dir>/stages/<index:02d>-<name>
    kind: str = "grpo"  # "sft" | "grpo"
    config: str = ""  # the stage's own recipe YAML (configs/sft/*.yaml or configs/grpo/*.yaml), repo-relative or absolute
    overrides: list[str] = field(default_factory=list)  # dotted key=value overrides applied to that recipe config
    data: str = ""  # this stage's training data (shards dir / verl parquet / warmstart: ref / reformulate:<stage>:<source>); "" = the recipe's own
    stop: StageStop = field(default_factory=StageStop)

    def validate(self) -> None:
        if not self.name or not NAME.match(self.name):
            raise ConfigError(f"curriculum stage name {self.name!r}: need a non-empty name of letters, digits, '_', '-', '.'")
        if self.kind not in KINDS:
            raise ConfigError(f"curriculum stage {self.name!r}: kind {self.kind!r} not in {KINDS}")
        if not self.config:
            raise ConfigError(f"curriculum stage {self.name!r}: `config` (the stage's recipe YAML) is required")
        file = recipe_file(self.config)
        if not file.is_file():
            raise ConfigError(f"curriculum stage {self.name!r}: recipe config {self.config} not found (looked for {file})")
        for item in self.overrides:
            key = item.split("=", 1)[0].strip()
            if "=" not in item:
                raise ConfigError(f"curriculum stage {self.name!r}: override {item!r} is not key=value")
            if key in SET_BY_CURRICULUM:
                raise ConfigError(f"curriculum stage {self.name!r}: {key} is set by the curriculum (previous stage's model, the stage folder)")
        if self.kind == "sft" and self.stop.reward_at_least:
            raise ConfigError(f"curriculum stage {self.name!r}: stop.reward_at_least applies to grpo stages (sft: stop.loss_at_most)")
        if self.kind == "grpo" and self.stop.loss_at_most:
            raise ConfigError(f"curriculum stage {self.name!r}: stop.loss_at_most applies to sft stages (grpo: stop.reward_at_least)")
        self.stop.validate()


@dataclass
class CurriculumConfig:
    model_path: str = ""  # start model: HF folder or warmstart:<config.yaml>
    output_dir: str = ""  # curriculum.json (state), summary.json, stages/<i>-<name>/, data/
    seed: int = 0  # every stage's seed (a stage override `seed=N` wins)
    stages: list[StageConfig] = field(default_factory=list)  # run in order, each from the previous stage's final model
    wandb: WandbConfig = field(default_factory=WandbConfig)  # the curriculum's run; GRPO stages log with the same mode/project
    dry_run: bool = False  # resolve every stage (verl: export data, validate the override set) without training (`--dry-run`)

    def validate(self) -> None:
        if not self.stages:
            raise ConfigError("curriculum: `stages` is empty; give at least one {name, kind, config} stage")
        names = [s.name for s in self.stages]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"curriculum: stage names must be unique; repeated: {dupes}")
        self.wandb.validate()

    def require_paths(self) -> None:
        if not self.model_path or not self.output_dir:
            raise ConfigError("train curriculum: model_path and output_dir are required")


def recipe_file(path: str) -> Path:
    return repo_path(path)
