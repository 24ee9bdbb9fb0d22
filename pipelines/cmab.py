"""Ray Data pipeline: canonical shards -> CMAB actor pool (one HF model on lean attention per actor) -> scores.

The scoring driver (pipelines/driver.py: input rows, resume, parts, consolidation; a kill -9 at
any point followed by the same command gives the uninterrupted result) runs CmabActor on an actor
pool -> `scores.parquet` +
`quarantine.parquet` + `summary.json` + plots (rho-bar histograms, layer profiles, heatmaps) +
`report.html`.

Responses: PISM's verified clean-image answers (`responses.pism_scores`) are reused as they are;
ids PISM has no verdict for are solved in the actor by generate-and-verify (engine/cmab/solve.py),
on the actor's own model (hf: no second copy) or on a vLLM engine started beside it.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pyarrow as pa

from engine.cmab.config import CmabConfig
from engine.config import ConfigError, config_hash, from_dict, to_dict
from engine.data.images import ImagePolicy
from engine.data.shards import ShardIndex, index_shards
from engine.generation.base import GenerationConfig
from engine.ray_session import init_ray
from engine.tracking import WandbConfig
from pipelines.driver import Scorer, actor_stage, problem_counts, provenance, publish_summary, score
from pipelines.generate import ActorPoolConfig
from pipelines.resumable import job_stamp, output_schema, problem_rows

OUTPUT_COLUMNS = ["id", "task", "split", "mode", "rho_bar", "bucket", "unsolved", "response_source", "response", "generations",
                  "tokens", "layer_profile", "prompt_tokens", "response_tokens", "image_tokens", "image_spans", "error",
                  "error_detail", "attention_rows"]
OUTPUT_SCHEMA = output_schema(OUTPUT_COLUMNS, rho_bar=pa.float64(), unsolved=pa.bool_(), generations=pa.int64(), tokens=pa.int64(),
                              layer_profile=pa.list_(pa.float64()), prompt_tokens=pa.int64(), response_tokens=pa.int64(),
                              image_tokens=pa.int64())


@dataclass
class CmabResponsesConfig:
    """Where verified responses come from (config: responses.*)."""

    pism_scores: str = ""  # a PISM scores.parquet: its verified clean-image answers are reused, its unsolved stay unsolved
    fallback: Literal["generate", "none"] = "generate"  # ids PISM has no verdict for: generate and verify, or record an error
    draws: int = 10  # fallback: sampled answers per sample at most; the first verified one is used
    seed: int = 0  # fallback draw seeds; PISM's seed reproduces its clean-image draws

    def validate(self) -> None:
        if self.fallback not in ("generate", "none"):
            raise ConfigError(f"responses.fallback {self.fallback!r} not in ('generate', 'none')")
        if self.draws < 1:
            raise ConfigError("responses.draws must be >= 1")
        if self.pism_scores and not Path(self.pism_scores).exists():
            raise ConfigError(f"responses.pism_scores {self.pism_scores} does not exist")


@dataclass
class HeatmapConfig:
    ids: list[str] = field(default_factory=list)  # samples to draw attention heatmaps for
    per_task: int = 1  # plus the first N ids (sorted) of every task


@dataclass
class CmabJobConfig:
    input: str = ""  # canonical parquet shards
    output: str = ""  # output directory: scores.parquet, quarantine.parquet, summary.json, report.html, plots, heatmaps/, parts/
    model_path: str = ""  # the model whose attention is measured (and whose answers were verified)
    model_id: str = ""  # the model's name in every output's provenance (default: the model path)
    device: str = "auto"  # auto (cuda when the actor has a GPU) | cpu | cuda
    dtype: str = "float32"
    cmab: CmabConfig = field(default_factory=CmabConfig)
    responses: CmabResponsesConfig = field(default_factory=CmabResponsesConfig)
    generation: GenerationConfig = field(default_factory=lambda: GenerationConfig(backend="hf", temperature=0.7, max_new_tokens=24))
    images: ImagePolicy = field(default_factory=ImagePolicy)  # image roots and limits, as `gradus data convert` takes them
    actors: ActorPoolConfig = field(default_factory=ActorPoolConfig)
    heatmaps: HeatmapConfig = field(default_factory=HeatmapConfig)
    limit: int = 0  # 0 = all rows; else the first `limit` ids in shard order
    wandb: WandbConfig = field(default_factory=WandbConfig)
    rows_per_block: int = 128  # unit of streaming writes and of resume

    def require_paths(self) -> None:
        if not self.input or not self.output or not self.model_path:
            raise ConfigError("score cmab: input, output and model_path are required (e.g. input=shards output=outputs/cmab model_path=...)")
        if self.generation.model_path and self.generation.model_path != self.model_path:
            raise ConfigError("score cmab: generation.model_path must be empty or equal model_path (responses come from the scored model)")
        self.cmab.validate()
        self.responses.validate()
        self.actors.validate()


def _device(name: str) -> str:
    import torch

    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


class CmabActor:
    """One model for the whole job; a batch is scored sample by sample (one forward each), after
    the samples without a PISM answer are solved together in one generate-and-verify call."""

    def __init__(self, job: dict, responses: list, provenance: dict, heatmap_ids: list[str]):
        import ray

        from engine.cmab.scorer import CmabScorer

        self.cfg = from_dict(CmabJobConfig, job)
        self.device = _device(self.cfg.device)
        self.policy = self.cfg.images
        self.scorer = CmabScorer(self.cfg.model_path, self.cfg.cmab, device=self.device, dtype=self.cfg.dtype, policy=self.policy)
        self.responses = ray.get(responses[0]) if responses else {}  # wrapped in a list: Ray passes the ref unresolved
        self.provenance, self.heatmap_ids = provenance, set(heatmap_ids)
        self._backend = None

    def _fallback_backend(self):
        """Built on first need: hf reuses the scorer's model (lean attention is plain SDPA outside a
        collection); vllm starts an engine in this actor."""
        if self._backend is None:
            gen = from_dict(GenerationConfig, {**to_dict(self.cfg.generation), "model_path": self.cfg.model_path, "device": self.device})
            if gen.backend == "hf":
                from engine.generation.hf_backend import HFBackend

                self._backend = HFBackend(gen, model=self.scorer.model, processor=self.scorer.processor)
            else:
                from engine.generation.factory import make_backend

                self._backend = make_backend(gen)
        return self._backend

    def __call__(self, batch):
        from engine.cmab.solve import solve
        from engine.data.reasons import SampleError
        from engine.data.sample import Sample, validate_sample

        rows, todo, to_solve = [], [], []
        for raw in batch.to_dict("records"):
            row = SCORER.blank(id=str(raw.get("id")), task=raw.get("task"), split=raw.get("split"), mode=self.cfg.cmab.mode, generations=0,
                               tokens=0)
            rows.append(row)
            try:
                sample = validate_sample(Sample.from_row(raw), self.policy, decode=False)
            except SampleError as err:
                row.update(error=err.reason.value, error_detail=err.detail)
                continue
            if sample.id in self.responses:
                todo.append((row, sample, self.responses[sample.id], "pism"))
            elif self.cfg.responses.fallback == "none":
                row.update(error="no_response", error_detail="no PISM verdict for this id and responses.fallback is 'none'")
            else:
                try:
                    to_solve.append((row, sample, sample.load_images(self.policy)))
                except SampleError as err:
                    row.update(error=err.reason.value, error_detail=err.detail)
        if to_solve:
            solved = solve([(s, imgs) for _, s, imgs in to_solve], self._fallback_backend(), self.cfg.responses.draws, self.cfg.responses.seed)
            for (row, sample, _), res in zip(to_solve, solved):
                row.update(generations=res.generations, tokens=res.tokens)
                if res.error:
                    row.update(error=res.error, error_detail=res.error_detail)
                else:
                    todo.append((row, sample, res.response, "generated"))
        for row, sample, response, source in todo:
            rec = self.scorer.score(sample, response, source=source, keep_rows=sample.id in self.heatmap_ids)
            row.update(rho_bar=rec.rho_bar, bucket=rec.bucket, unsolved=rec.unsolved, response_source=source, response=response,
                       layer_profile=rec.layer_profile or None, prompt_tokens=rec.prompt_tokens, response_tokens=rec.response_tokens,
                       image_tokens=rec.image_tokens, image_spans=json.dumps(rec.image_spans), error=rec.error,
                       error_detail=rec.error_detail,
                       attention_rows=json.dumps(rec.attention_rows) if rec.attention_rows is not None else None)
        return SCORER.frame(rows, self.provenance)


# CMAB keeps its own actor: its stage is one attention-collecting forward pass per sample on an HF
# model (lean attention), not batch generation.
# heatmap rows (attention_rows) become PNGs; scores.parquet stays lean (parts/ keep them for a rerun)
SCORER = Scorer("cmab", OUTPUT_SCHEMA, CmabActor, metric="cmab", drop=("attention_rows",))


def _heatmap_ids(cfg: CmabJobConfig, index: ShardIndex) -> list[str]:
    """The configured ids plus the first `per_task` ids (sorted) of each task among the rows scored."""
    ids = list(cfg.heatmaps.ids)
    if cfg.heatmaps.per_task > 0:
        by_task: dict[str | None, list[str]] = {}
        for rid, task in zip(index.ids, index.tasks):
            by_task.setdefault(task, []).append(rid)
        for group in by_task.values():
            ids += sorted(group)[: cfg.heatmaps.per_task]
    return sorted(set(ids))


def _write_heatmaps(frame, out: Path) -> list[Path]:
    from engine.cmab.report import write_heatmap

    folder = out / "heatmaps"
    folder.mkdir(exist_ok=True)
    paths = []
    for row in frame[frame["attention_rows"].notna()].itertuples():
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in row.id)
        title = f"{row.id} ({row.task}): rho-bar {row.rho_bar:.3f}, {row.bucket}"
        paths.append(write_heatmap(json.loads(row.attention_rows), json.loads(row.image_spans), int(row.prompt_tokens),
                                   folder / f"{safe}.png", title))
    return paths


def _write_report(out: Path, summary: dict, heatmaps: list[Path]) -> Path:
    from engine.cmab.report import BUCKETS
    from engine.html_report import write_html_report

    headline = {k: summary[k] for k in ("rows", "scored", "unsolved", "mode", "response_sources", "generations", "samples_per_s",
                                        "model_id", "config_hash", "seed", "gradus_version", "wall_s")}
    per_task = [{"task": t, **{b: c.get(b, 0) for b in BUCKETS}, **summary["rho_bar_per_task"].get(t, {})}
                for t, c in sorted(summary["per_task_buckets"].items())]
    tables = {"Buckets and rho-bar per task": per_task, "Quarantined and errored rows": problem_rows(summary)}
    images = [Path(p) for p in summary["plots"]] + heatmaps
    return write_html_report(out / "report.html", f"CMAB: {out.name}", headline, tables, images, summary)


def run_cmab(cfg: CmabJobConfig) -> dict:
    import ray

    from engine.cmab.report import write_layer_profiles, write_rho_histograms
    from engine.cmab.responses import responses_from_pism

    cfg.require_paths()
    started = time.time()
    init_ray()
    out = Path(cfg.output)
    # What decides a row's scores: the model, the metric settings and where responses come from.
    chash = config_hash({"model_path": cfg.model_path, "dtype": cfg.dtype, "cmab": to_dict(cfg.cmab),
                         "responses": to_dict(cfg.responses), "generation": to_dict(cfg.generation)})
    images = cfg.images.absolute()
    responses = responses_from_pism(cfg.responses.pism_scores) if cfg.responses.pism_scores else {}
    index = index_shards(cfg.input).head(cfg.limit)
    prov = provenance(cfg.model_id or cfg.model_path, chash, cfg.responses.seed)
    job = to_dict(cfg) | {"images": to_dict(images)}
    stage = actor_stage(SCORER, {"job": job, "responses": [ray.put(responses)], "provenance": prov, "heatmap_ids": _heatmap_ids(cfg, index)},
                        cfg.actors.remote_args())
    fixed = {"mode": cfg.cmab.mode, "generations": 0, "tokens": 0, **prov}
    run = score(SCORER, out, job_stamp(chash, cfg.input, images), index, stage, cfg.rows_per_block, fixed)
    frame, bad, todo = run.frame, run.bad, run.todo
    heatmaps = _write_heatmaps(frame[~bad], out)
    ok = frame[frame["error"].isna()]
    scored_ok = ok[ok["rho_bar"].notna()]
    summary = {
        "rows": int(len(frame)),
        "scored": int(len(scored_ok)),
        "unsolved": int(ok["unsolved"].fillna(False).astype(bool).sum()),
        **problem_counts(frame, bad),
        "buckets": ok["bucket"].fillna("unsolved").value_counts().to_dict(),
        "per_task_buckets": {t: g["bucket"].fillna("unsolved").value_counts().to_dict() for t, g in ok.groupby("task")},
        "rho_bar_per_task": {t: {"rho_bar_mean": round(float(g["rho_bar"].mean()), 4), "rho_bar_median": round(float(g["rho_bar"].median()), 4)}
                             for t, g in scored_ok.groupby("task")},
        "response_sources": ok["response_source"].value_counts().to_dict(),
        "generations": int(frame["generations"].fillna(0).sum()),
        "mode": cfg.cmab.mode,
        **prov,
        "samples_per_s": round(todo / run.scoring_s, 3) if todo and run.scoring_s > 0 else None,  # this run's rows only (a resume scores fewer)
        "wall_s": round(time.time() - started, 1),
    }
    title = f"({cfg.cmab.mode} mode)"
    summary["plots"] = [str(write_rho_histograms(frame, cfg.cmab.buckets, out / "rho_hist.png", title)),
                        str(write_layer_profiles(frame, out / "layer_profile.png", title))]
    summary["heatmaps"] = [str(p) for p in heatmaps]
    return publish_summary(out, summary, wandb=cfg.wandb, job="score-cmab", config=to_dict(cfg),
                           report=lambda folder, s: _write_report(folder, s, heatmaps))
