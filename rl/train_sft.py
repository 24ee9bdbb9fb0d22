"""`gradus train sft`: SFT on Ray Train as a recipe, with the same model and data references as GRPO.

`model_path` may be an HF folder or `warmstart:<config.yaml>` (the embedded default, built and
cached on first use); `train_data` canonical shards, `warmstart:<config.yaml>:<split>`, either with
a `?tasks=..&per_task=N` selection (rl/sources.py). `output_dir` is the job folder:

- `model/`: the HF folder (weights, config, processor, `gradus_model.json`), published atomically;
- `summary.json`: run_sft's summary (loss curve, steps, stop, parallelism) + model and data paths;
- `data/`: the task selection's shard, when there was one; `ray_train/`: Ray Train's run folder.

Rejection-sampled shards (`gradus data rejection-sample`) carry the whole response in `answer`, so
they must be trained with `response_template: "{answer}"`; another template is refused here
(it would wrap a response that already has its format, e.g. `\\boxed{\\boxed{3}}`).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from engine.config import ConfigError
from rl.sft.config import SFTConfig

MODEL_DIR = "model"
SFT_RESPONSE_TEMPLATE = "{answer}"  # = pipelines/rejection_sample.py SFT_RESPONSE_TEMPLATE (not imported: that pulls in Ray Data)


def _check_rejection_template(train: Path, template: str) -> None:
    import pyarrow.parquet as pq

    from engine.data.shards import shard_paths

    first = shard_paths(train)[0]
    rows = pq.read_table(first, columns=["meta"]).slice(0, 1).column("meta").to_pylist()
    meta = json.loads(rows[0]) if rows and rows[0] else {}
    if "rejection_sampling" in meta and template != SFT_RESPONSE_TEMPLATE:
        raise ConfigError(f"sft: {train} holds rejection-sampled responses (answer = the whole response); "
                          f"train them with response_template: {SFT_RESPONSE_TEMPLATE!r}, not {template!r}")


def resolve(cfg: SFTConfig) -> tuple[SFTConfig, str, Path]:
    """(the config run_sft gets: real model and data paths, output_dir = <output_dir>/model; model id; job folder)."""
    from engine.data.formats.verl import is_verl_file
    from rl.sources import resolve_data, resolve_model

    if not cfg.model_path or not cfg.train_data or not cfg.output_dir:
        raise ConfigError("train sft: model_path, train_data and output_dir are required")
    out = Path(cfg.output_dir).expanduser().resolve()
    model_path, model_id = resolve_model(cfg.model_path)
    train = resolve_data(cfg.train_data, out / "data", "train")
    if is_verl_file(train):
        raise ConfigError(f"train sft: {cfg.train_data} is a verl parquet file; SFT reads canonical shards")
    _check_rejection_template(train, cfg.response_template)
    return dataclasses.replace(cfg, model_path=str(model_path), train_data=str(train), output_dir=str(out / MODEL_DIR)), model_id, out


def run_sft_job(cfg: SFTConfig, *, parent_meta: dict | None = None) -> dict:
    """Resolve references, train (rl/sft/ray_train.run_sft), write <output_dir>/summary.json; returns it."""
    from rl.sft.ray_train import run_sft

    cfg.validate()
    resolved, model_id, out = resolve(cfg)
    out.mkdir(parents=True, exist_ok=True)
    summary = run_sft(resolved, parent_meta={"model_id": model_id, **(parent_meta or {})})
    summary = {"job": "train sft", **summary, "model_id": model_id, "model_path": resolved.model_path,
               "train_data": resolved.train_data, "output_model": resolved.output_dir}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary
