"""config: one GRPO run, whichever backend runs it (verl on clusters, TRL on one machine).

Both backends read the same verl-format parquet (exported from canonical shards by gradus), score
responses through the same reward entrypoint (rl/reward.py compute_score with the same
RewardConfig) and take the same algorithm settings; only the launch section differs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from engine.config import ConfigError
from engine.tracking import WandbConfig
from rl.sampler.config import SamplerConfig


@dataclass
class GrpoData:
    train: str = ""  # canonical shards (exported to verl parquet under output_dir/data) or a verl parquet file
    val: str = ""  # same, optional
    max_prompt_length: int = 512  # tokens, image tokens included
    max_response_length: int = 64
    shuffle: bool = True  # False for a curriculum-ordered export (verl: data.shuffle=False)
    image_max_pixels: int = 0  # 0: the processor's own budget


@dataclass
class GrpoAlgorithm:
    steps: int = 50  # optimizer steps (verl: trainer.total_training_steps)
    prompts_per_step: int = 8  # verl: data.train_batch_size
    group_size: int = 8  # responses per prompt (verl: actor_rollout_ref.rollout.n; TRL: num_generations)
    lr: float = 1e-6
    # learning-rate schedule over the run's optimizer steps; both backends know these two (verl's fsdp optim)
    lr_schedule: Literal["constant", "cosine"] = "constant"  # cosine: decays to 0 by the last step
    warmup_ratio: float = 0.0  # share of the steps over which the lr rises linearly from 0
    kl_coef: float = 0.001  # low_var_kl loss (verl use_kl_loss); TRL beta
    entropy_coef: float = 0.0
    temperature: float = 1.0  # rollout sampling
    top_p: float = 1.0
    clip_ratio: float = 0.2
    mini_batch_prompts: int = 0  # verl ppo_mini_batch_size; 0 = prompts_per_step (one update per step)

    def validate(self) -> None:
        if self.steps < 1 or self.prompts_per_step < 1 or self.group_size < 2:
            raise ConfigError("grpo.algorithm: need steps >= 1, prompts_per_step >= 1, group_size >= 2 (GRPO compares responses within a group)")
        if self.lr <= 0 or self.kl_coef < 0 or not 0 < self.top_p <= 1 or self.temperature <= 0:
            raise ConfigError("grpo.algorithm: need lr > 0, kl_coef >= 0, 0 < top_p <= 1, temperature > 0")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"grpo.algorithm.warmup_ratio {self.warmup_ratio} not in [0, 1)")
        if self.mini_batch_prompts and self.prompts_per_step % self.mini_batch_prompts:
            raise ConfigError("grpo.algorithm.mini_batch_prompts must divide prompts_per_step")


@dataclass
class GrpoReward:
    path: str = ""  # reward entrypoint file; empty: gradus's rl/reward.py
    name: str = "compute_score"
    config: str = ""  # RewardConfig YAML (e.g. configs/reward/modomodo.yaml); empty: RewardConfig defaults


@dataclass
class VerlLaunch:
    """How verl runs: resources, rollout engine, FSDP, checkpoints, job submission."""

    nnodes: int = 1
    n_gpus_per_node: int = 8
    strategy: Literal["fsdp", "fsdp2"] = "fsdp2"
    tensor_parallel_size: int = 1  # vLLM rollout TP
    gpu_memory_utilization: float = 0.6
    param_offload: bool = False
    optimizer_offload: bool = False
    micro_batch_per_gpu: int = 4  # ppo / log-prob micro batches
    save_freq: int = 50
    test_freq: int = 0  # 0: no validation during training
    resume_mode: Literal["auto", "disable"] = "auto"
    rollout_data_dir: str = "rollouts"  # trainer.rollout_data_dir under output_dir: <step>.jsonl per step -> `gradus data pass-rates`; "" = off
    project: str = "gradus"
    experiment: str = ""  # default: the output directory's name
    # verl 0.9's v1 trainer needs the TransferQueue package (the verl-core extra), which our pinned
    # set does not install; the v0 trainer is what main_ppo runs with use_v1=false.
    use_v1: bool = False
    address: str = ""  # Ray dashboard (http://HOST:8265) for `ray job submit`; empty: run in this process's cluster
    runtime_env: dict[str, Any] = field(default_factory=dict)  # merged over gradus's (working_dir, env vars)
    python: str = "python3"  # the interpreter that runs main_ppo on the cluster when submitted (a run here uses gradus's own)
    dry_run_in_job: bool = False  # the submitted job validates verl's config, loads the reward, reads the data, exits 0 untrained
    overrides: list[str] = field(default_factory=list)  # extra Hydra overrides, appended last (validated too)

    def validate(self) -> None:
        if self.nnodes < 1 or self.n_gpus_per_node < 1 or self.tensor_parallel_size < 1:
            raise ConfigError("grpo.verl: need nnodes, n_gpus_per_node, tensor_parallel_size >= 1")
        if self.n_gpus_per_node % self.tensor_parallel_size:
            raise ConfigError("grpo.verl.tensor_parallel_size must divide n_gpus_per_node")
        if not 0 < self.gpu_memory_utilization < 1:
            raise ConfigError("grpo.verl.gpu_memory_utilization must be in (0, 1)")


@dataclass
class TrlLaunch:
    """The single-process backend (TRL GRPOTrainer) on CPU or one GPU."""

    device: str = "auto"  # auto | cpu | cuda
    dtype: str = "float32"
    torch_threads: int = 2
    log_every: int = 1
    save_every: int = 0  # 0: only the final checkpoint


@dataclass
class GrpoJobConfig:
    backend: Literal["verl", "trl"] = "trl"
    dry_run: bool = False  # verl: export the data, validate and record the run without launching it (`--dry-run`)
    model_path: str = ""  # HF folder to start from
    output_dir: str = ""  # data/, checkpoints/, final HF model, metrics, plots
    seed: int = 0
    data: GrpoData = field(default_factory=GrpoData)
    algorithm: GrpoAlgorithm = field(default_factory=GrpoAlgorithm)
    reward: GrpoReward = field(default_factory=GrpoReward)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)  # which prompts each step trains on (docs/sampler.md)
    verl: VerlLaunch = field(default_factory=VerlLaunch)
    trl: TrlLaunch = field(default_factory=TrlLaunch)
    wandb: WandbConfig = field(default_factory=WandbConfig)

    def validate(self) -> None:
        if self.backend not in ("verl", "trl"):
            raise ConfigError(f"grpo.backend {self.backend!r} not in ('verl', 'trl')")
        if not self.model_path or not self.output_dir or not self.data.train:
            raise ConfigError("train grpo: model_path, output_dir and data.train are required")
        self.algorithm.validate()
        self.sampler.validate()
        self.verl.validate()
        self.wandb.validate()

    @property
    def train_source(self) -> str:
        """The training data reference (rl/sources.py TrainInputs, shared with SFT configs)."""
        return self.data.train

    @train_source.setter
    def train_source(self, spec: str) -> None:
        self.data.train = spec
