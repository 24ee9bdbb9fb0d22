"""`gradus submit`: a recipe as a Ray job, through the library's one submitter (engine/jobs.py).

The recipe's config is resolved and validated here, before anything reaches the cluster, and
travels in the job's runtime_env as YAML (GRADUS_JOB_CONFIG), so a config file outside the
uploaded working dir works too; the job runs `python -m pipelines.cli <recipe> --config env:...`.
"""
from __future__ import annotations

import os
import shlex
import tempfile
from pathlib import Path
from typing import Any

import yaml

from engine.config import ConfigError, dump_yaml, load_config
from engine.jobs import address, runtime_env, submit_job
from engine.paths import CONFIG_DIR
from pipelines.registry import RECIPES

CONFIG_ENV = "GRADUS_JOB_CONFIG"


def entrypoint(recipe_name: str, python: str = "python") -> str:
    return " ".join([shlex.quote(python), "-m", "pipelines.cli", *recipe_name.split(), "--config", f"env:{CONFIG_ENV}"])


def submit(recipe_name: str, config: str | None, overrides: list[str], *, addr: str | None = None,
           runtime_env_file: str | None = None, job_id: str | None = None, python: str = "python") -> dict[str, Any]:
    """Resolve and validate a recipe's config (default: the recipe's file under configs/), then submit
    it as a Ray job; returns the job id and what was sent (the config itself not echoed)."""
    if recipe_name not in RECIPES:
        raise ConfigError(f"unknown pipeline {recipe_name!r}; one of: {', '.join(sorted(RECIPES))}")
    recipe = RECIPES[recipe_name]
    cfg = load_config(recipe.config_cls(), config or CONFIG_DIR / recipe.default_config, overrides)  # validates
    if hasattr(cfg, "require_paths"):  # what the recipe checks at run time, checked before the cluster sees it
        cfg.require_paths()
    extra = yaml.safe_load(Path(runtime_env_file).read_text()) if runtime_env_file else {}
    env = runtime_env({"WANDB_MODE": "offline", CONFIG_ENV: dump_yaml(cfg)}, extra)
    command = entrypoint(recipe_name, python)
    submitted = submit_job(command, env, addr=addr, job_id=job_id, metadata={"gradus_recipe": recipe_name})
    shown = {**env, "env_vars": {k: ("<resolved config>" if k == CONFIG_ENV else v) for k, v in env["env_vars"].items()}}
    return {"job_id": submitted, "address": address(addr), "entrypoint": command, "runtime_env": shown}


def config_from_env(name: str) -> Path:
    """`--config env:NAME`: the YAML a submitted job carries, written to a private temp file for load_config."""
    text = os.environ.get(name)
    if text is None:
        raise ConfigError(f"--config env:{name}: environment variable {name} is not set (was this job submitted with gradus submit?)")
    fd, path = tempfile.mkstemp(prefix="gradus-job-", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return Path(path)
