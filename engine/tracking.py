"""Experiment tracking through wandb, offline by default (no network here; `wandb sync` later)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from engine.config import ConfigError


@dataclass
class WandbConfig:
    mode: str = "offline"  # offline | online | disabled
    project: str = "gradus"
    run_name: str = ""  # default: the job's output directory name

    def validate(self) -> None:
        if self.mode not in ("offline", "online", "disabled"):
            raise ConfigError(f"wandb.mode {self.mode!r} not in (offline, online, disabled)")


def log_summary(cfg: WandbConfig, out_dir: Path, job: str, config: dict, summary: dict[str, Any], images: Sequence[Path] = ()) -> str | None:
    """One run per job: config, flat numeric summary, plots. Returns the run directory (None when disabled)."""
    if cfg.mode == "disabled":
        return None
    os.environ.setdefault("WANDB_SILENT", "true")
    import wandb

    run = wandb.init(project=cfg.project, name=cfg.run_name or out_dir.name, job_type=job, mode=cfg.mode,
                     dir=str(out_dir), config=config, reinit="finish_previous")
    flat = {k: v for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for group in ("buckets", "survival"):
        for key, value in (summary.get(group) or {}).items():
            flat[f"{group}/{key}"] = value
    run.log({**flat, **{p.stem: wandb.Image(str(p)) for p in images}})
    run.summary.update(flat)
    run_dir = run.dir
    run.finish()
    return str(Path(run_dir).parent)
