"""Ray Data pipeline: canonical shards -> PISM actor pool (vLLM or HF engine per actor) -> scores.

read_parquet -> drop ids already scored -> map_batches(PismActor, ActorPoolStrategy(min, max)) ->
the driver streams result blocks (iter_batches) into parts/, one parquet file per block, each
written to a temp name and renamed, so a part is either whole or absent. A rerun of the same
command reads the ids in parts/ and scores only the rest. We do this instead of Ray Data's
CheckpointConfig because there the output file and the checkpoint record are separate writes (a
kill between them re-scores and duplicates rows) and, on small inputs here, output blocks were
only written at the end of the run. The final step keeps one row per id and writes
`scores.parquet` sorted by id, so the result equals an uninterrupted run (draws are seeded). Bad
records go to `quarantine.parquet` with their reason code; engine failures stay in scores as
error rows.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from engine import __version__
from engine.config import ConfigError, config_hash, from_dict, to_dict
from engine.data.images import ImagePolicy
from engine.data.reasons import Reason, SampleError
from engine.data.sample import Sample, validate_sample
from engine.generation.base import GenerationConfig, make_backend
from engine.pism import PismConfig, score_samples
from engine.ray_session import init_ray
from engine.tracking import WandbConfig, log_summary
from pipelines.generate import ActorPoolConfig

OUTPUT_COLUMNS = ["id", "task", "split", "successes", "runs", "lambda_star", "bucket", "unsolved", "generations", "tokens",
                  "mask_mode", "schedule", "error", "error_detail", "draws_json", "clean_response"]
DATA_REASONS = {r.value for r in Reason}


@dataclass
class PismJobConfig:
    input: str = ""  # canonical parquet shards
    output: str = ""  # output directory: scores.parquet, quarantine.parquet, summary.json, report.html, plots, parts/
    pism: PismConfig = field(default_factory=PismConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    actors: ActorPoolConfig = field(default_factory=ActorPoolConfig)
    limit: int = 0  # 0 = all rows
    wandb: WandbConfig = field(default_factory=WandbConfig)
    rows_per_block: int = 128  # unit of streaming writes and of resume: a kill loses at most the blocks in flight

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
                # structure only; images are decoded once by the scorer (errors land there with their reason)
                samples.append(validate_sample(Sample.from_row(raw), self.policy, decode=False))
                slots.append(row)
            except SampleError as err:
                row.update(error=err.reason.value, error_detail=err.detail)
            rows.append(row)
        for row, rec in zip(slots, score_samples(samples, self.backend, self.cfg, self.policy)):
            row.update(successes=rec.successes, runs=rec.runs, lambda_star=rec.lambda_star, bucket=rec.bucket, unsolved=rec.unsolved,
                       generations=rec.generations, tokens=rec.tokens, error=rec.error, error_detail=rec.error_detail,
                       draws_json=json.dumps(rec.draws), clean_response=rec.clean_response)
        frame = pd.DataFrame(rows, columns=OUTPUT_COLUMNS)
        for key, value in self.provenance.items():
            frame[key] = value
        return frame


def _done_ids(parts: Path) -> set[str]:
    import pyarrow.parquet as pq

    done: set[str] = set()
    for f in parts.glob("*.parquet"):
        done.update(pq.read_table(f, columns=["id"]).column("id").to_pylist())
    return done


def _write_part(frame, parts: Path) -> None:
    import uuid

    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp = parts / f".{uuid.uuid4().hex}.tmp"
    # No pandas metadata: Ray hands over Arrow-backed list dtypes that pandas cannot read back from it.
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None), tmp)
    tmp.rename(parts / f"part-{uuid.uuid4().hex}.parquet")  # atomic: a part is whole or absent


def _consolidate(parts: Path):
    """Every readable part file, one row per id (a re-scored id is identical), sorted by id."""
    import pandas as pd
    import pyarrow.parquet as pq

    frames = [pq.read_table(f).to_pandas() for f in sorted(parts.glob("*.parquet"))]
    if not frames:
        return pd.DataFrame(columns=OUTPUT_COLUMNS)
    frame = pd.concat(frames, ignore_index=True)
    return frame.drop_duplicates("id", keep="first").sort_values("id").reset_index(drop=True)


def _write_report(out: Path, summary: dict) -> Path:
    from engine.html_report import write_html_report
    from engine.pism.report import BUCKETS

    headline = {k: summary[k] for k in ("rows", "scored", "generations", "tokens", "schedule", "mask_mode", "model_id",
                                        "config_hash", "seed", "gradus_version", "wall_s")}
    per_task = [{"task": t, **{b: counts.get(b, 0) for b in BUCKETS}} for t, counts in sorted(summary["per_task_buckets"].items())]
    problems = [{"reason": r, "rows": n, "where": "quarantine.parquet"} for r, n in summary["quarantined"].items()]
    problems += [{"reason": r, "rows": n, "where": "scores.parquet (error rows)"} for r, n in summary["errors"].items()]
    tables = {"Buckets per task": per_task, "Survival (share still solved)": [{"ratio": r, "share": v} for r, v in summary["survival"].items()],
              "Quarantined and errored rows": problems}
    return write_html_report(out / "report.html", f"PISM: {out.name}", headline, tables, [Path(p) for p in summary["plots"]], summary)


def run_pism(cfg: PismJobConfig, model_id: str = "") -> dict:
    import ray.data

    cfg.require_paths()
    started = time.time()
    init_ray()
    out = Path(cfg.output)
    parts = out / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    # What decides a row's scores (not where it is written, nor how many rows run): the same
    # model and settings give the same hash in every output directory.
    chash = config_hash({"pism": to_dict(cfg.pism), "generation": to_dict(cfg.generation)})
    stamp = out / "job.json"
    job = {"config_hash": chash, "input": cfg.input}
    if stamp.exists() and json.loads(stamp.read_text()) != job:
        raise ConfigError(f"{out} holds a run with another config or input; use a new output directory")
    stamp.write_text(json.dumps(job))

    for stale in parts.glob(".*.tmp"):  # a write cut short by a kill
        stale.unlink()
    done = _done_ids(parts)
    ds = ray.data.read_parquet(cfg.input)
    rows = ds.count()  # parquet metadata only
    if cfg.limit:
        ds = ds.limit(cfg.limit)
    if done:
        done_ref = ray.put(done)
        ds = ds.map_batches(lambda b: b[~b["id"].astype(str).isin(ray.get(done_ref))], batch_format="pandas")
    # Streaming (not all-to-all) split into small blocks: each is scored and persisted on its own.
    ds = ds.repartition(target_num_rows_per_block=cfg.rows_per_block)
    provenance = {"model_id": model_id or cfg.generation.model_path, "config_hash": chash, "seed": cfg.pism.seed, "gradus_version": __version__}
    scored = ds.map_batches(
        PismActor,
        fn_constructor_kwargs={"pism": to_dict(cfg.pism), "generation": to_dict(cfg.generation), "provenance": provenance},
        batch_format="pandas",
        **cfg.actors.remote_args(),
    )
    todo = max(0, (min(rows, cfg.limit) if cfg.limit else rows) - len(done))
    with tqdm(total=todo, desc="pism", unit="sample", initial=0) as bar:
        for frame in scored.iter_batches(batch_format="pandas", batch_size=None):
            _write_part(frame, parts)
            bar.update(len(frame))

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
    from engine.pism.report import survival, write_plots

    shares = survival(list(ok["lambda_star"]), cfg.pism.ratios)
    summary["survival"] = dict(zip((f"{r:g}" for r in cfg.pism.ratios), (round(v, 4) for v in shares)))
    summary["plots"] = [str(p) for p in write_plots(frame, cfg.pism.ratios, out, f"({cfg.pism.mask_mode}, {cfg.pism.schedule})")]
    summary["wandb_run"] = log_summary(cfg.wandb, out, "score-pism", to_dict(cfg), summary, [Path(p) for p in summary["plots"]])
    summary["report"] = str(_write_report(out, summary))
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
