"""verl GRPO launch: a gradus GrpoJobConfig -> verl's Hydra overrides -> a Ray job (engine/jobs.py) or a local run.

Every override set is validated before anything is launched by composing verl's own trainer config
(`verl/trainer/config/ppo_trainer.yaml`) with Hydra, as `verl.trainer.main_ppo` does, and reading
every key back: a key verl does not have fails to compose, and one whose value does not come back
as set (a typo caught by a `+` prefix, an interpolation) fails the read-back. The legacy top-level
`custom_reward_function.*` keys compose but verl 0.9's main_ppo silently ignores them (only
`reward.custom_reward_function.*` is read); they are refused. With `sampler.kind: online` the train
dataset is gradus's sampler plugin (rl/grpo/verl_sampler.py, verl's `data.custom_cls` hook).
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from engine.config import ConfigError
from engine.paths import REPO_ROOT, repo_path
from rl.grpo.config import GrpoJobConfig

REWARD_ENTRYPOINT = "rl/reward.py"
# by module name (verl's pkg:// form), not by file: verl's overlong-prompt filter pickles the dataset into a
# process pool, and a class loaded from a file path cannot be pickled by reference (every row gets dropped)
SAMPLER_PLUGIN = "pkg://rl.grpo.verl_sampler"
IGNORED_BY_VERL = ("custom_reward_function.",)  # legacy keys: accepted by Hydra, never read by main_ppo


def _q(value: Any) -> str:
    """A Hydra override value: paths quoted (they may hold '=' or ','), bools lowercase, lists in brackets."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(str(v) for v in value) + "]"
    if isinstance(value, str) and any(c in value for c in "/=,: "):
        return f"'{value}'"
    return str(value)


def reward_path(cfg: GrpoJobConfig, uploaded: bool) -> str:
    """Where verl finds the reward entrypoint: relative to the uploaded working_dir on a cluster, absolute locally."""
    if cfg.reward.path:
        return cfg.reward.path
    return REWARD_ENTRYPOINT if uploaded else str(REPO_ROOT / REWARD_ENTRYPOINT)


def reward_config_path(cfg: GrpoJobConfig, uploaded: bool) -> str:
    """The RewardConfig YAML as verl's reward workers see it: inside the uploaded working_dir (their cwd) a
    repo file is named relative to it, since this machine's absolute path does not exist on the cluster;
    a file outside the repo is passed as it is (it must be on storage every node sees)."""
    path = repo_path(cfg.reward.config)
    if uploaded and path.is_relative_to(REPO_ROOT):
        return str(path.relative_to(REPO_ROOT))
    return str(path)


def sampler_settings_path(cfg: GrpoJobConfig) -> Path:
    from rl.grpo.verl_sampler import SETTINGS_FILE

    return Path(cfg.output_dir).resolve() / "data" / SETTINGS_FILE


def write_sampler_settings(cfg: GrpoJobConfig) -> Path | None:
    """The online sampler's settings file the plugin reads (None when the sampler is off); store and mixture
    paths that exist here are made absolute, since verl runs in another working directory."""
    if cfg.sampler.kind != "online":
        return None
    from dataclasses import replace

    from rl.grpo.verl_sampler import write_settings

    s = cfg.sampler
    here = {k: str(Path(getattr(s, k)).resolve()) for k in ("store", "mixture") if getattr(s, k) and Path(getattr(s, k)).exists()}
    return write_settings(replace(s, **here), seed=cfg.seed, steps=cfg.algorithm.steps,
                          checkpoint_dir=Path(cfg.output_dir).resolve() / "checkpoints", path=sampler_settings_path(cfg))


def sampler_overrides(cfg: GrpoJobConfig, val_file: str) -> dict[str, Any]:
    """verl keys for `sampler.kind: online`: the plugin as the dataset class, read in this process in order."""
    if cfg.sampler.kind != "online":
        return {}
    from rl.grpo.verl_sampler import CLASS_NAME

    if cfg.verl.use_v1:
        raise ConfigError("sampler.kind online on verl needs verl.use_v1: false (the v1 trainer never hands the dataset "
                          "its rollouts: no on_batch_end)")
    if cfg.verl.test_freq and not val_file:
        raise ConfigError("sampler.kind online with verl.test_freq > 0 needs data.val: verl would validate on the train "
                          "file, which the sampler drives")
    return {"data.custom_cls.path": SAMPLER_PLUGIN, "data.custom_cls.name": CLASS_NAME,
            "data.shuffle": False,  # dataset positions are the run's draws in order (the sampler does the choosing)
            "data.dataloader_num_workers": 0}  # the sampler lives in the trainer process and sees each step's verdicts first


def verl_overrides(cfg: GrpoJobConfig, train_file: str, val_file: str, uploaded: bool = False) -> list[str]:
    """The full `python -m verl.trainer.main_ppo` override list for this GRPO run."""
    a, d, v = cfg.algorithm, cfg.data, cfg.verl
    out = Path(cfg.output_dir).resolve()
    mini = a.mini_batch_prompts or a.prompts_per_step
    logger = ["console"] if cfg.wandb.mode == "disabled" else ["console", "wandb"]
    pairs: list[tuple[str, Any]] = [
        ("algorithm.adv_estimator", "grpo"),
        ("algorithm.use_kl_in_reward", False),  # GRPO: KL as a loss term, not in the reward
        ("data.train_files", train_file),
        ("data.val_files", val_file or train_file),
        ("data.train_batch_size", a.prompts_per_step),
        ("data.max_prompt_length", d.max_prompt_length),
        ("data.max_response_length", d.max_response_length),
        ("data.filter_overlong_prompts", True),
        ("data.truncation", "error"),
        ("data.image_key", "images"),
        ("data.shuffle", d.shuffle),  # False keeps a curriculum-ordered export in order
        ("data.seed", cfg.seed),
        ("actor_rollout_ref.model.path", str(Path(cfg.model_path).resolve()) if Path(cfg.model_path).exists() else cfg.model_path),
        ("actor_rollout_ref.actor.strategy", v.strategy),
        ("actor_rollout_ref.actor.optim.lr", a.lr),
        ("actor_rollout_ref.actor.optim.lr_scheduler_type", a.lr_schedule),
        ("actor_rollout_ref.actor.optim.lr_warmup_steps_ratio", a.warmup_ratio),
        ("actor_rollout_ref.actor.ppo_mini_batch_size", mini),
        ("actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu", v.micro_batch_per_gpu),
        ("actor_rollout_ref.actor.use_kl_loss", a.kl_coef > 0),
        ("actor_rollout_ref.actor.kl_loss_coef", a.kl_coef),
        ("actor_rollout_ref.actor.kl_loss_type", "low_var_kl"),
        ("actor_rollout_ref.actor.entropy_coeff", a.entropy_coef),
        ("actor_rollout_ref.actor.clip_ratio", a.clip_ratio),
        ("actor_rollout_ref.actor.fsdp_config.param_offload", v.param_offload),
        ("actor_rollout_ref.actor.fsdp_config.optimizer_offload", v.optimizer_offload),
        ("actor_rollout_ref.ref.fsdp_config.param_offload", v.param_offload),
        ("actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu", v.micro_batch_per_gpu),
        ("actor_rollout_ref.rollout.name", "vllm"),
        ("actor_rollout_ref.rollout.n", a.group_size),
        ("actor_rollout_ref.rollout.temperature", a.temperature),
        ("actor_rollout_ref.rollout.top_p", a.top_p),
        ("actor_rollout_ref.rollout.tensor_model_parallel_size", v.tensor_parallel_size),
        ("actor_rollout_ref.rollout.gpu_memory_utilization", v.gpu_memory_utilization),
        ("actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu", v.micro_batch_per_gpu),
        ("reward.custom_reward_function.path", reward_path(cfg, uploaded)),
        ("reward.custom_reward_function.name", cfg.reward.name),
        ("trainer.nnodes", v.nnodes),
        ("trainer.n_gpus_per_node", v.n_gpus_per_node),
        ("trainer.total_training_steps", a.steps),
        ("trainer.save_freq", v.save_freq),
        ("trainer.test_freq", v.test_freq or -1),
        ("trainer.val_before_train", bool(v.test_freq and val_file)),
        ("trainer.resume_mode", v.resume_mode),
        ("trainer.default_local_dir", str(out / "checkpoints")),
        ("trainer.project_name", v.project),
        ("trainer.experiment_name", v.experiment or out.name),
        ("trainer.logger", logger),
        ("trainer.use_v1", v.use_v1),
    ]
    if v.rollout_data_dir:  # per-step rollout dump -> pass rates per sample (rl/grpo/rollout_log.py)
        pairs.append(("trainer.rollout_data_dir", str(out / v.rollout_data_dir)))
    pairs = list({**dict(pairs), **sampler_overrides(cfg, val_file)}.items())  # the sampler's values win
    overrides = [f"{k}={_q(val)}" for k, val in pairs]
    if cfg.sampler.kind == "online":  # a key verl's data schema lacks: '+'
        from rl.grpo.verl_sampler import SETTINGS_KEY

        overrides.append(f"+data.{SETTINGS_KEY}={_q(str(sampler_settings_path(cfg)))}")
    if cfg.reward.config:  # reward_kwargs is an open dict in verl's schema: adding a key needs '+'
        overrides.append(f"+reward.custom_reward_function.reward_kwargs.reward_config={_q(reward_config_path(cfg, uploaded))}")
    return overrides + list(v.overrides)


def compose(overrides: list[str]):
    """verl's trainer config composed with `overrides`, exactly as its Hydra entrypoint does (CPU-safe)."""
    import verl
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    config_dir = Path(verl.__file__).parent / "trainer" / "config"
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return hydra_compose(config_name="ppo_trainer", overrides=list(overrides))


def _parsed(value: str) -> Any:
    import yaml

    return yaml.safe_load(value.strip("'")) if not value.startswith("'") else value.strip("'")


def validate_overrides(overrides: list[str]):
    """Compose them in verl's config, read every value back, and run verl's own `validate_config`
    (batch-size divisibility across GPUs, micro batches, KL settings); returns the composed config."""
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    for item in overrides:
        if item.lstrip("+~").startswith(IGNORED_BY_VERL):
            raise ConfigError(f"verl override {item!r}: main_ppo ignores top-level custom_reward_function.*; use reward.custom_reward_function.*")
    try:
        config = compose(overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(f"verl rejects the override set: {exc}") from exc
    for item in overrides:
        if item.startswith("~"):
            continue
        key, value = item.lstrip("+").split("=", 1)
        got = OmegaConf.select(config, key, throw_on_missing=False)
        got = OmegaConf.to_container(got) if OmegaConf.is_config(got) else got
        want = _parsed(value)
        if got != want and str(got) != str(want):
            raise ConfigError(f"verl override {item!r} reads back as {got!r}")
    from verl.trainer.main_ppo import validate_config
    from verl.trainer.ppo.utils import need_critic, need_reference_policy

    try:
        validate_config(config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))
    except (AssertionError, ValueError, HydraException) as exc:  # its worker configs are built via hydra.instantiate
        raise ConfigError(f"verl's validate_config rejects the run: {exc}") from exc
    return config


def main_ppo_command(overrides: list[str], python: str = "python3") -> list[str]:
    return [python, "-m", "verl.trainer.main_ppo", *overrides]


def job_command(cfg: GrpoJobConfig, overrides: list[str]) -> list[str]:
    """What a submitted job runs: main_ppo, or with verl.dry_run_in_job the same override set checked
    by rl/grpo/verl_dry_run.py inside the job (verl's config and validation, reward, data; no training)."""
    if cfg.verl.dry_run_in_job:
        return [cfg.verl.python, "-m", "rl.grpo.verl_dry_run", *overrides]
    return main_ppo_command(overrides, cfg.verl.python)


def runtime_env(cfg: GrpoJobConfig) -> dict:
    """gradus's runtime_env (working_dir and excludes as for `gradus submit`; credential-looking env vars
    refused) with the wandb mode, user additions (`verl.runtime_env`) merged on top. WANDB_API_KEY
    and the like come from the cluster's environment."""
    from engine.jobs import runtime_env as job_runtime_env

    return job_runtime_env({"WANDB_MODE": cfg.wandb.mode, "TOKENIZERS_PARALLELISM": "false"}, cfg.verl.runtime_env)


def submit(cfg: GrpoJobConfig, overrides: list[str]) -> dict:
    """Submit the run to verl.address through gradus's one submitter (auth token, retries); returns the
    submission id with the entrypoint and runtime_env sent."""
    from engine.jobs import submit_job

    entrypoint = " ".join(shlex.quote(x) for x in job_command(cfg, overrides))
    env = runtime_env(cfg)
    job_id = submit_job(entrypoint, env, addr=cfg.verl.address,
                        metadata={"gradus": "train grpo", "experiment": cfg.verl.experiment or Path(cfg.output_dir).name})
    return {"submission_id": job_id, "entrypoint": entrypoint, "runtime_env": env}


def merge_command(checkpoint_dir: str | Path, target_dir: str | Path, python: str = sys.executable) -> list[str]:
    """verl's FSDP checkpoint (global_step_N/actor) -> an HF model folder."""
    return [python, "-m", "verl.model_merger", "merge", "--backend", "fsdp", "--local_dir", str(checkpoint_dir), "--target_dir", str(target_dir)]


def latest_actor_checkpoint(output_dir: str | Path) -> Path | None:
    """checkpoints/global_step_N/actor of the last step verl recorded, or None."""
    root = Path(output_dir) / "checkpoints"
    marker = root / "latest_checkpointed_iteration.txt"
    if not marker.exists():
        return None
    step = marker.read_text().strip()
    path = root / f"global_step_{step}" / "actor"
    return path if path.exists() else None
