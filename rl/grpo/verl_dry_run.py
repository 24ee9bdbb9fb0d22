"""What a `verl.dry_run_in_job: true` submission runs in place of `verl.trainer.main_ppo`.

It takes main_ppo's exact override set and stops where training would start: verl's config composed
in the job's own verl install and checked by verl's `validate_config` (rl/grpo/verl_launch.py:
validate_overrides), the reward function loaded as verl's reward manager loads it (the path is
relative to the uploaded working_dir), the RewardConfig it is given parsed, the data files
opened from the job, and a custom dataset class (the online sampler) loaded with its settings file.
Then it prints MARKER and exits 0; a failure exits 1 with the reason. This checks a cluster
hand-off (auth token, working_dir, interpreter, verl version, storage) without GPUs.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from engine.config import ConfigError

MARKER = "gradus verl dry run: config validated, reward loaded, data readable"


def _files(value) -> list[str]:
    """data.train_files / val_files: one path or a list of them."""
    return [value] if isinstance(value, str) else [str(v) for v in value]


def check_sampler(config) -> str | None:
    """A custom dataset class loaded as verl loads it; the online sampler's settings file read from the job."""
    if not config.data.custom_cls.get("path"):
        return None
    from verl.utils.dataset.rl_dataset import get_dataset_class

    from rl.grpo.verl_sampler import SETTINGS_KEY, read_settings

    name = get_dataset_class(config.data).__name__
    if config.data.get(SETTINGS_KEY):
        read_settings(config.data[SETTINGS_KEY])  # a missing file or a bad sampler config fails here
    return name


def check(overrides: list[str]) -> dict:
    """Everything main_ppo would read before its first rollout, checked here; returns what was checked."""
    from omegaconf import OmegaConf
    from verl.trainer.ppo.reward import get_custom_reward_fn

    from rl.grpo.verl_launch import validate_overrides
    from rl.reward import reward_config

    config = validate_overrides(overrides)
    data = _files(config.data.train_files) + _files(config.data.val_files)
    missing = [f for f in data if not Path(f).is_file()]
    if missing:
        raise ConfigError(f"data files not readable from the job (put them on storage every node sees): {missing}")
    if get_custom_reward_fn(config) is None:
        raise ConfigError("reward.custom_reward_function.path is empty: verl would score with its default reward, not ours")
    kwargs = OmegaConf.select(config, "reward.custom_reward_function.reward_kwargs", default=None)
    spec = kwargs.get("reward_config") if kwargs is not None else None
    reward_config(OmegaConf.to_container(spec) if OmegaConf.is_config(spec) else spec)  # a bad file or key fails here
    sampler = check_sampler(config)
    return {"cwd": str(Path.cwd()), "data_files": data, "reward": OmegaConf.to_container(config.reward.custom_reward_function),
            "nnodes": config.trainer.nnodes, "n_gpus_per_node": config.trainer.n_gpus_per_node, "sampler": sampler}


def main(argv: list[str] | None = None) -> int:
    try:
        summary = check(list(sys.argv[1:] if argv is None else argv))
    except (ConfigError, FileNotFoundError) as exc:
        print(f"gradus verl dry run: failed: {exc}", file=sys.stderr, flush=True)
        return 1
    print(json.dumps(summary, indent=2))
    print(MARKER, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
