"""config: demo.* -- the main job: corpus -> scores -> store -> selections -> training arms -> eval -> report.

One config runs it on the embedded default (configs/demo.yaml: tiny model, synthetic corpus, TRL
on CPU) and on a GPU cluster (configs/demo/qwen2_5_vl_7b_cluster.yaml: a 7B checkpoint, an
Orsta-style corpus, verl). Every stage is the stage's own recipe config plus overrides set here,
so what the demo runs is exactly what `gradus score pism`, `gradus select`, ... run alone.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from engine.config import ConfigError

WARM = "warmstart:configs/warmstart/tiny.yaml"


@dataclass
class StageRecipe:
    """A stage's recipe YAML (repo-relative or absolute) and dotted overrides applied on top."""

    config: str = ""
    overrides: list[str] = field(default_factory=list)


@dataclass
class ArmConfig:
    """One training arm: an arm of the selection job, GRPO-only(x) or SFT(x)+GRPO(y) (the label is its key)."""

    select_arm: str = ""  # arm name in the selection job (e.g. grpo_mid_hard, sft_mid_grpo_hard)
    grpo_overrides: list[str] = field(default_factory=list)  # on top of demo.grpo's, this arm's GRPO only (e.g. sampler.kind=online)


@dataclass
class DemoConfig:
    model: str = WARM  # start model: an HF folder, or warmstart:<config> (built offline and cached)
    pool: str = f"{WARM}:train?per_task=32"  # scored and selected from (data source; ?tasks=&per_task= slices it)
    heldout: str = f"{WARM}:test"  # evaluation split (never trained on)
    heldout_limit: int = 120  # stable task-mixed subset of the held-out split (0: all)
    out_dir: str = "outputs/demo"
    seeds: list[int] = field(default_factory=lambda: [0])  # one training run per arm and seed; spread = across seeds
    pism: StageRecipe = field(default_factory=lambda: StageRecipe("configs/pism/tiny.yaml"))
    cmab: StageRecipe = field(default_factory=lambda: StageRecipe("configs/cmab/tiny.yaml"))
    store: StageRecipe = field(default_factory=lambda: StageRecipe("configs/store/pism_cmab.yaml"))
    select: StageRecipe = field(default_factory=lambda: StageRecipe("configs/select/demo.yaml"))
    sft: StageRecipe = field(default_factory=lambda: StageRecipe("configs/sft/tiny.yaml"))
    grpo: StageRecipe = field(default_factory=lambda: StageRecipe("configs/grpo/tiny_trl.yaml"))
    eval: StageRecipe = field(default_factory=lambda: StageRecipe("configs/eval/default.yaml"))
    arms: dict[str, ArmConfig] = field(default_factory=lambda: {
        "fullset": ArmConfig("grpo_fullset"),
        "random": ArmConfig("grpo_random"),
        "mid_hard": ArmConfig("grpo_mid_hard"),
        "sft_grpo": ArmConfig("sft_mid_grpo_hard"),
        "online": ArmConfig("grpo_fullset", ["sampler.kind=online"]),  # the whole pool, each step's prompts chosen online
    })
    heatmaps_per_task: int = 1  # CMAB attention heatmaps in the report
    noise_repeats: int = 8  # noise windows per GRPO stage for train_reward_margin_sd (rl/grpo/reward_noise.py); 0: not measured

    def validate(self) -> None:
        if not self.model or not self.pool or not self.heldout or not self.out_dir:
            raise ConfigError("demo: model, pool, heldout and out_dir are required")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"demo.seeds must be a non-empty list of distinct seeds, got {self.seeds}")
        if not self.arms:
            raise ConfigError("demo.arms: name at least one training arm")
        for label, arm in self.arms.items():
            if not arm.select_arm:
                raise ConfigError(f"demo.arms.{label}.select_arm is required (an arm of the selection job)")
            if label == "base":
                raise ConfigError("demo.arms: 'base' names the starting model in the comparison; pick another label")
        for name in ("pism", "cmab", "store", "select", "sft", "grpo", "eval"):
            if not getattr(self, name).config:
                raise ConfigError(f"demo.{name}.config is required (the stage's recipe YAML)")
        if self.heldout_limit < 0:
            raise ConfigError("demo.heldout_limit must be >= 0")
        if self.noise_repeats < 0 or self.noise_repeats == 1:
            raise ConfigError("demo.noise_repeats must be 0 (not measured) or >= 2 (an sd needs two windows)")


def arm_samples_online(cfg: DemoConfig, label: str) -> bool:
    """Whether the arm's GRPO stage picks its prompts with the online sampler (whose prior reads the scores)."""
    from engine.config import load_config
    from engine.paths import repo_path
    from rl.grpo.config import GrpoJobConfig

    grpo = load_config(GrpoJobConfig, repo_path(cfg.grpo.config), [*cfg.grpo.overrides, *cfg.arms[label].grpo_overrides])
    return grpo.sampler.kind == "online"
