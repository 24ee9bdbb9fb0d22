"""Ray Data pipeline: canonical shards -> PISM actor pool (vLLM or HF engine per actor) -> scores.

read_parquet -> map_batches(PismActor, concurrency=(min, max)) -> write_parquet, with Ray Data's
row-level checkpointing on `id` so a rerun of the same command skips rows already written. A kill
can leave a block written but not yet checkpointed (scored twice) or a half-written file; the
final step reads every readable part, keeps one row per id and writes `scores.parquet` sorted
by id, so the result equals an uninterrupted run (scoring is seeded per draw). Bad records go to
`quarantine.parquet` with their reason code; engine failures stay in scores as error rows.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine import __version__
from engine.config import ConfigError, config_hash, from_dict, to_dict
from engine.data.images import ImagePolicy
from engine.data.reasons import Reason, SampleError
from engine.data.sample import Sample
from engine.generation.base import GenerationConfig, make_backend
from engine.pism import PismConfig, score_samples
from engine.ray_session import init_ray
from pipelines.generate import ActorPoolConfig

OUTPUT_COLUMNS = ["id", "task", "split", "successes", "runs", "lambda_star", "bucket", "unsolved", "generations", "tokens",
                  "mask_mode", "schedule", "error", "error_detail", "draws_json"]
DATA_REASONS = {r.value for r in Reason}


@dataclass
class PismJobConfig:
    input: str = ""  # canonical parquet shards
    output: str = ""  # output directory: scores.parquet, quarantine.parquet, summary.json, parts/
    pism: PismConfig = field(default_factory=PismConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    actors: ActorPoolConfig = field(default_factory=ActorPoolConfig)
    limit: int = 0  # 0 = all rows

    def require_paths(self) -> None:
        if not self.input or not self.output:
            raise ConfigError("score pism: input and output are required (e.g. input=path/to/shards output=outputs/pism)")


class PismActor:
    """One engine per actor for the whole job; each batch is scored with requests from all its samples in flight."""

    def __init__(self, pism: dict, generation: dict, provenance: dict):
        self.cfg = from_dict(PismConfig, pism)
        self.backend = make_backend(from_dict(GenerationConfig, generation))
        self.provenance = provenance
        self.policy = ImagePolicy()

    def __call__(self, batch):
        import pandas as pd

        rows, samples, slots = [], [], []
        for raw in batch.to_dict("records"):
            row = {c: None for c in OUTPUT_COLUMNS} | {"id": str(raw.get("id")), "task": raw.get("task"), "split": raw.get("split"),
                                                      "mask_mode": self.cfg.mask_mode, "schedule": self.cfg.schedule}
            try:
                samples.append(Sample.from_row(raw))
                slots.append(row)
            except SampleError as err:
                row.update(error=err.reason.value, error_detail=err.detail)
            rows.append(row)
        for row, rec in zip(slots, score_samples(samples, self.backend, self.cfg, self.policy)):
            row.update(successes=rec.successes, runs=rec.runs, lambda_star=rec.lambda_star, bucket=rec.bucket, unsolved=rec.unsolved,
                       generations=rec.generations, tokens=rec.tokens, error=rec.error, error_detail=rec.error_detail,
                       draws_json=json.dumps(rec.draws))
        frame = pd.DataFrame(rows, columns=OUTPUT_COLUMNS)
        for key, value in self.provenance.items():
            frame[key] = value
        return frame


def _consolidate(parts: Path):
    """Every readable part file, one row per id (a re-scored id is identical), sorted by id."""
    import pandas as pd
    import pyarrow.parquet as pq

    frames = []
    for f in sorted(parts.glob("*.parquet")):
        try:
            frames.append(pq.read_table(f).to_pandas())
        except Exception:  # a file cut short by a kill: its rows were never checkpointed, so they were re-scored
            continue
    if not frames:
        return pd.DataFrame(columns=OUTPUT_COLUMNS)
    frame = pd.concat(frames, ignore_index=True)
    return frame.drop_duplicates("id", keep="first").sort_values("id").reset_index(drop=True)


def run_pism(cfg: PismJobConfig, model_id: str = "") -> dict:
    import ray.data
    from ray.data.checkpoint import CheckpointConfig

    cfg.require_paths()
    started = time.time()
    init_ray()
    out = Path(cfg.output)
    parts = out / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    chash = config_hash(cfg)
    stamp = out / "job.json"
    job = {"config_hash": chash, "input": cfg.input}
    if stamp.exists() and json.loads(stamp.read_text()) != job:
        raise ConfigError(f"{out} holds a run with another config or input; use a new output directory")
    stamp.write_text(json.dumps(job))

    ctx = ray.data.DataContext.get_current()
    ctx.checkpoint_config = CheckpointConfig(id_column="id", checkpoint_path=str((out / "checkpoint").resolve()), delete_checkpoint_on_success=False)
    ds = ray.data.read_parquet(cfg.input)
    if cfg.limit:
        ds = ds.limit(cfg.limit)
    provenance = {"model_id": model_id or cfg.generation.model_path, "config_hash": chash, "seed": cfg.pism.seed, "gradus_version": __version__}
    scored = ds.map_batches(
        PismActor,
        fn_constructor_kwargs={"pism": to_dict(cfg.pism), "generation": to_dict(cfg.generation), "provenance": provenance},
        concurrency=(cfg.actors.min_actors, cfg.actors.max_actors),
        num_cpus=cfg.actors.num_cpus,
        num_gpus=cfg.actors.num_gpus or None,
        batch_size=cfg.actors.batch_size,
        batch_format="pandas",
    )
    try:
        scored.write_parquet(str(parts))
    finally:
        ctx.checkpoint_config = None

    frame = _consolidate(parts)
    bad = frame["error"].isin(DATA_REASONS)
    frame[~bad].to_parquet(out / "scores.parquet", index=False)
    frame[bad].to_parquet(out / "quarantine.parquet", index=False)
    ok = frame[frame["error"].isna()]
    summary = {
        "rows": int(len(frame)),
        "scored": int(len(ok)),
        "quarantined": frame.loc[bad, "error"].value_counts().to_dict(),
        "errors": frame.loc[~bad, "error"].dropna().value_counts().to_dict(),
        "buckets": ok["bucket"].fillna("unsolved").value_counts().to_dict(),
        "per_task_buckets": {t: g["bucket"].fillna("unsolved").value_counts().to_dict() for t, g in ok.groupby("task")},
        "generations": int(ok["generations"].sum()) if len(ok) else 0,
        "tokens": int(ok["tokens"].sum()) if len(ok) else 0,
        "schedule": cfg.pism.schedule,
        "mask_mode": cfg.pism.mask_mode,
        **provenance,
        "wall_s": round(time.time() - started, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
