"""One verl run on this machine's cluster: plan it, then train and merge, blocking.

`gradus train grpo --backend verl` without `verl.address` and every verl stage of a curriculum go
through here, so both decide the same way:
- `code_uploaded`: verl's workers find gradus (the reward entrypoint, a repo RewardConfig) relative
  to an uploaded working_dir when the run is submitted to `verl.address`, or when this process is
  itself a submitted Ray job (main_ppo's ray.init then inherits the job's runtime_env); otherwise
  by this checkout's absolute paths;
- `plan`: both splits exported as verl parquet, the override set validated against verl's own
  config, written to `verl_overrides.txt`;
- `train_and_merge`: main_ppo to completion as a child process (no polling, no kill), then the last
  actor checkpoint merged by verl's model merger into `<output_dir>/model`, published whole, with
  the input model's image processor and a gradus_model.json, like the other backends' model folders;
  with `sampler.kind: online`, then the sampler's posterior written back as after a TRL run.
Locally both child processes run under this interpreter: the one that just validated the override
set against its verl install (`verl.python` names the cluster's interpreter for submitted runs).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from engine import __version__
from engine.config import ConfigError, config_hash, to_dict
from engine.paths import REPO_ROOT
from engine.publish import partial_path, publish_dir
from rl.grpo import verl_launch
from rl.grpo.config import GrpoJobConfig
from rl.grpo.data import verl_parquet

IN_RAY_JOB = "RAY_JOB_CONFIG_JSON_ENV_VAR"  # set by Ray for a submitted job's driver
MODEL_DIR = "model"
OVERRIDES_FILE = "verl_overrides.txt"
# the merger writes the tokenizer; the image processor and chat template come from the input model
PROCESSOR_FILES = ("preprocessor_config.json", "video_preprocessor_config.json", "processor_config.json", "chat_template.json",
                   "chat_template.jinja", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt")


def code_uploaded(cfg: GrpoJobConfig) -> bool:
    """Whether verl's workers see gradus as an uploaded working_dir rather than this checkout."""
    return bool(cfg.verl.address) or IN_RAY_JOB in os.environ


def prepare_data(cfg: GrpoJobConfig) -> tuple[str, str]:
    """Both splits as verl parquet; `warmstart:` names and `?tasks=` queries resolved first (rl/sources.py)."""
    from rl.sources import resolve_data

    out = Path(cfg.output_dir) / "data"
    max_pixels = cfg.data.image_max_pixels
    train = verl_parquet(str(resolve_data(cfg.data.train, out, "train")), out, "train", max_pixels)
    val = verl_parquet(str(resolve_data(cfg.data.val, out, "val")), out, "val", max_pixels) if cfg.data.val else None
    return str(train.resolve()), str(val.resolve()) if val else ""


def plan(cfg: GrpoJobConfig) -> dict:
    """Data exported, the override set validated against verl's own config and written; nothing launched."""
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    train, val = prepare_data(cfg)
    verl_launch.write_sampler_settings(cfg)  # sampler.kind online: the verl plugin's settings, under data/
    uploaded = code_uploaded(cfg)
    overrides = verl_launch.verl_overrides(cfg, train, val, uploaded=uploaded)
    verl_launch.validate_overrides(overrides)
    (out / OVERRIDES_FILE).write_text("\n".join(overrides) + "\n")
    checkpoint = out / "checkpoints" / f"global_step_{cfg.algorithm.steps}" / "actor"
    return {"train_file": train, "val_file": val, "overrides": overrides, "uploaded": uploaded,
            "command": verl_launch.main_ppo_command(overrides, python=sys.executable),
            "merge_command": verl_launch.merge_command(checkpoint, partial_path(out / MODEL_DIR))}


def require_checkpoints(cfg: GrpoJobConfig) -> None:
    """A blocking run ends in a merged model: verl must save the last step's checkpoint."""
    if cfg.verl.save_freq <= 0:
        raise ConfigError("verl.save_freq must be > 0 (the last step's checkpoint is merged into the model)")


def require_cluster(hint: str) -> None:
    """verl trains on GPUs: this machine's, or those of the cluster this process runs in (RAY_ADDRESS)."""
    import torch

    if not torch.cuda.is_available() and not os.environ.get("RAY_ADDRESS"):
        raise ConfigError(f"verl trains on GPUs and this machine has none: {hint}")


def train_and_merge(cfg: GrpoJobConfig, overrides: list[str], input_model: str | Path, meta: dict) -> dict:
    """main_ppo to completion, then its last actor checkpoint merged into `<output_dir>/model`; returns
    the checkpoint, the model folder, the wall time and, with `sampler.kind: online`, the sampler's
    posterior written back (`sampler`). `meta` joins the model's gradus_model.json."""
    require_checkpoints(cfg)
    started = time.time()
    out = Path(cfg.output_dir)
    subprocess.run(verl_launch.main_ppo_command(overrides, python=sys.executable), check=True, cwd=REPO_ROOT)
    checkpoint = verl_launch.latest_actor_checkpoint(out)
    if checkpoint is None:
        raise RuntimeError(f"verl finished without an actor checkpoint under {out / 'checkpoints'}")
    model, source = out / MODEL_DIR, Path(input_model)
    with publish_dir(model) as tmp:
        subprocess.run(verl_launch.merge_command(checkpoint, tmp), check=True)
        for name in PROCESSOR_FILES:
            if (source / name).is_file() and not (tmp / name).exists():
                shutil.copy2(source / name, tmp / name)
        (tmp / "gradus_model.json").write_text(json.dumps({
            **meta, "stage": "grpo", "backend": "verl", "parent": str(source), "grpo_config": to_dict(cfg),
            "config_hash": config_hash(cfg), "seed": cfg.seed, "gradus_version": __version__, "steps": cfg.algorithm.steps}, indent=2))
    return {"checkpoint": str(checkpoint), "model_path": str(model), "sampler": sampler_writeback(cfg, checkpoint, meta),
            "wall_s": round(time.time() - started, 1)}


def sampler_writeback(cfg: GrpoJobConfig, checkpoint: Path, meta: dict) -> dict:
    """After the merge (the model is safe whatever this finds): the online sampler's posterior from the
    run's saved state and rollout dump (rl/grpo/verl_sampler_writeback.py); {"kind": "uniform"} otherwise."""
    if cfg.sampler.kind != "online":
        return {"kind": cfg.sampler.kind}
    from rl.grpo.verl_sampler_writeback import verl_posterior

    final_step = int(checkpoint.parent.name.rsplit("_", 1)[1])  # checkpoints/global_step_N/actor
    provenance = {"model_id": meta.get("model_id"), "config_hash": config_hash(cfg), "seed": cfg.seed, "gradus_version": __version__}
    return verl_posterior(cfg, final_step, provenance)
