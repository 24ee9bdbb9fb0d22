"""Ray Data pipeline: canonical shards -> PISM actor pool (vLLM or HF engine per actor) -> scores.

The scoring driver (pipelines/driver.py: input rows, resume, parts, consolidation) runs PismActor
on an actor pool -> `scores.parquet` (one row per id) + `quarantine.parquet` + `summary.json` +
plots + `report.html`. PISM keeps its own actor rather than a ray.data.llm processor: its schedule
picks every sample's next draw (mask ratio, count) from the verdicts of the previous ones, which a
one-pass batch processor cannot do.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from engine.config import ConfigError, config_hash, from_dict, to_dict
from engine.data.images import ImagePolicy
from engine.data.reasons import SampleError
from engine.data.sample import Sample, validate_sample
from engine.data.shards import index_shards
from engine.generation.base import GenerationConfig
from engine.generation.factory import make_backend
from engine.pism import PismConfig, PismStream, score_samples
from engine.ray_session import init_ray
from engine.tracking import WandbConfig
from pipelines.driver import Scorer, actor_stage, problem_counts, provenance, publish_summary, score
from pipelines.generate import ActorPoolConfig
from pipelines.resumable import job_stamp, output_schema, problem_rows

OUTPUT_COLUMNS = ["id", "task", "split", "successes", "runs", "lambda_star", "bucket", "unsolved", "generations", "tokens",
                  "prompt_tokens", "prefilled_tokens", "speculative_generations", "mask_mode", "mask_draws", "schedule", "error", "error_detail", "draws_json", "clean_response"]
OUTPUT_SCHEMA = output_schema(OUTPUT_COLUMNS, successes=pa.list_(pa.int64()), runs=pa.list_(pa.int64()), lambda_star=pa.float64(),
                              unsolved=pa.bool_(), generations=pa.int64(), tokens=pa.int64(),
                              prompt_tokens=pa.int64(), prefilled_tokens=pa.int64(), speculative_generations=pa.int64())


@dataclass
class PismJobConfig:
    input: str = ""  # canonical parquet shards
    output: str = ""  # output directory: scores.parquet, quarantine.parquet, summary.json, report.html, plots, parts/
    pism: PismConfig = field(default_factory=PismConfig)
    # sampled, never greedy by default: K greedy draws of one masked image would all be one draw
    # (the reference probes at 0.7; docs/methods.md#pism)
    generation: GenerationConfig = field(default_factory=lambda: GenerationConfig(temperature=0.7))
    images: ImagePolicy = field(default_factory=ImagePolicy)  # image roots and limits, as `gradus data convert` takes them
    actors: ActorPoolConfig = field(default_factory=ActorPoolConfig)
    limit: int = 0  # 0 = all rows; else the first `limit` ids in shard order
    wandb: WandbConfig = field(default_factory=WandbConfig)
    rows_per_block: int = 128  # unit of streaming writes and of resume: a kill loses at most the blocks in flight
    # A block's last samples keep only a few draws in flight (each waits for its previous verdict): the next
    # block's samples fill the engine meanwhile.
    concurrent_blocks: int = 2  # vLLM: input blocks one actor scores at once on its engine (Ray max_concurrency; a block's batches run together)
    model_id: str = ""  # the model's name in every output's provenance (default: the model path)

    def scores_key(self) -> dict:
        """What decides the job's scores (not where they are written, nor the actor pool's shape)."""
        return {"pism": self.pism.decisive(), "generation": to_dict(self.generation), "input": self.input, "limit": self.limit,
                "images": to_dict(self.images), "model_id": self.model_id}

    def require_paths(self) -> None:
        if not self.input or not self.output:
            raise ConfigError("score pism: input and output are required (e.g. input=path/to/shards output=outputs/pism)")
        if self.concurrent_blocks < 1:
            raise ConfigError("score pism: concurrent_blocks must be >= 1")

    def actor_args(self) -> dict:
        """map_batches arguments of the PISM actor pool: the pool's, plus the blocks an actor scores at once."""
        args = self.actors.remote_args()
        if self.generation.backend == "vllm":  # HF scores a batch in blocking rounds: concurrent blocks would only queue
            args["max_concurrency"] = self.concurrent_blocks
        return args


class PismActor:
    """One engine per actor for the whole job; each batch is scored with requests from all its samples in flight.

    `__call__` is a coroutine, so Ray Data runs several batches of an actor at once on its event loop
    (a block's batches, and `concurrent_blocks` blocks): on a streaming engine they share one
    `PismStream`, whose engine steps advance all of them."""

    def __init__(self, pism: dict, generation: dict, provenance: dict, images: dict | None = None):
        self.cfg = from_dict(PismConfig, pism)
        self.backend = make_backend(from_dict(GenerationConfig, generation))
        self.stream = PismStream(self.backend, self.cfg) if self.backend.streaming else None
        self.provenance = provenance
        self.policy = from_dict(ImagePolicy, images or {})

    async def __call__(self, batch):
        rows, samples, slots = [], [], []
        for raw in batch.to_dict("records"):
            row = SCORER.blank(id=str(raw.get("id")), task=raw.get("task"), split=raw.get("split"), mask_mode=self.cfg.mask_mode,
                               mask_draws=self.cfg.mask_draws, schedule=self.cfg.schedule)
            try:
                # structure only; images are decoded once by the scorer (errors land there with their reason)
                samples.append(validate_sample(Sample.from_row(raw), self.policy, decode=False))
                slots.append(row)
            except SampleError as err:
                row.update(error=err.reason.value, error_detail=err.detail)
            rows.append(row)
        if self.stream is not None:
            records = await self.stream.score(samples, self.policy)
        else:  # blocking rounds: this batch holds the event loop until it is done
            records = score_samples(samples, self.backend, self.cfg, self.policy)
        for row, rec in zip(slots, records):
            row.update(successes=rec.successes, runs=rec.runs, lambda_star=rec.lambda_star, bucket=rec.bucket, unsolved=rec.unsolved,
                       generations=rec.generations, tokens=rec.tokens, prompt_tokens=rec.prompt_tokens,
                       prefilled_tokens=rec.prefilled_tokens, speculative_generations=rec.speculative_generations, error=rec.error, error_detail=rec.error_detail,
                       draws_json=json.dumps(rec.draws), clean_response=rec.clean_response)
        return SCORER.frame(rows, self.provenance)


SCORER = Scorer("pism", OUTPUT_SCHEMA, PismActor, metric="pism")


def _write_report(out: Path, summary: dict) -> Path:
    from engine.html_report import write_html_report
    from engine.pism.report import BUCKETS

    headline = {k: summary[k] for k in ("rows", "scored", "generations", "tokens", "schedule", "mask_mode", "model_id",
                                        "config_hash", "seed", "gradus_version", "wall_s")}
    per_task = [{"task": t, **{b: counts.get(b, 0) for b in BUCKETS}} for t, counts in sorted(summary["per_task_buckets"].items())]
    problems = problem_rows(summary)
    tables = {"Buckets per task": per_task, "Survival (share still solved)": [{"ratio": r, "share": v} for r, v in summary["survival"].items()],
              "Quarantined and errored rows": problems}
    return write_html_report(out / "report.html", f"PISM: {out.name}", headline, tables, [Path(p) for p in summary["plots"]], summary)


def run_pism(cfg: PismJobConfig) -> dict:
    cfg.require_paths()
    started = time.time()
    init_ray()
    out = Path(cfg.output)
    # What decides a row's scores (not where it is written, nor how many rows run): the same
    # model and settings give the same hash in every output directory.
    chash = config_hash({"pism": cfg.pism.decisive(), "generation": to_dict(cfg.generation)})
    images = cfg.images.absolute()
    index = index_shards(cfg.input).head(cfg.limit)
    prov = provenance(cfg.model_id or cfg.generation.model_path, chash, cfg.pism.seed)
    stage = actor_stage(SCORER, {"pism": to_dict(cfg.pism), "generation": to_dict(cfg.generation), "provenance": prov,
                                 "images": to_dict(images)}, cfg.actor_args())
    fixed = {"mask_mode": cfg.pism.mask_mode, "mask_draws": cfg.pism.mask_draws, "schedule": cfg.pism.schedule, **prov}
    run = score(SCORER, out, job_stamp(chash, cfg.input, images), index, stage, cfg.rows_per_block, fixed)
    frame, bad = run.frame, run.bad
    ok = frame[frame["error"].isna()]
    summary = {
        "rows": int(len(frame)),
        "scored": int(len(ok)),
        **problem_counts(frame, bad),
        "buckets": ok["bucket"].fillna("unsolved").value_counts().to_dict(),
        "per_task_buckets": {t: g["bucket"].fillna("unsolved").value_counts().to_dict() for t, g in ok.groupby("task")},
        "generations": int(ok["generations"].sum()) if len(ok) else 0,
        "speculative_generations": int(ok["speculative_generations"].sum()) if len(ok) else 0,  # run ahead, not needed
        "tokens": int(ok["tokens"].sum()) if len(ok) else 0,
        # prompt tokens the engine computed per generation (the rest it reused from its prefix cache)
        "prefill_tokens_per_generation": round(float(ok["prefilled_tokens"].sum()) / max(1, int(ok["generations"].sum())), 2),
        "schedule": cfg.pism.schedule,
        "mask_mode": cfg.pism.mask_mode,
        "mask_draws": cfg.pism.mask_draws,
        **prov,
        "wall_s": round(time.time() - started, 1),
    }
    from engine.pism.report import survival, write_plots

    shares = survival(list(ok["lambda_star"]), cfg.pism.ratios)
    summary["survival"] = dict(zip((f"{r:g}" for r in cfg.pism.ratios), (round(v, 4) for v in shares)))
    summary["plots"] = [str(p) for p in write_plots(frame, cfg.pism.ratios, out, f"({cfg.pism.mask_mode}, {cfg.pism.schedule})")]
    return publish_summary(out, summary, wandb=cfg.wandb, job="score-pism", config=to_dict(cfg), report=_write_report)
