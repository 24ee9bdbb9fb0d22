"""Evaluation on Ray Data: before/after accuracy per task and pass@k on a held-out split.

For every model in `models` (e.g. `{before: <folder>, after: <folder>}`), in order:
input rows (pipelines/inputs.py: the shards without a converter's quarantine/, each id once; a
repeated id's later copies are `duplicate_id` rows) -> the job's items (all, or a stable
`limit`-sized subset) -> the scoring driver (pipelines/driver.py: drop ids this model already
has) -> n seeded draws per item on the model's engine (one GenerationConfig for all models; vLLM:
plain batch generation on ray.data.llm, pipelines/llm_batch.py; HF: an EvalActor pool) -> every
draw judged by the item's own verifier (engine/generation/verified.py) -> per-item rows streamed
into `<output>/<label>/parts/` and consolidated (pipelines/resumable.py: a killed job rerun with
the same command resumes per model) -> `<label>/scores.parquet` + `<label>/quarantine.parquet`. Then, for the whole job:
`summary.json` (accuracy, pass@k per task and overall per model, deltas against the baseline),
`results.parquet` (every model's rows, `model` column), plots, `report.html`, a wandb run.

What is computed (docs/evaluation.md):
- An item's n draws give c correct; pass@k = 1 - C(n-c, k) / C(n, k) (the unbiased estimator,
  engine/verifiers/passk.py), averaged over items, per task and overall.
- accuracy = pass@1 = mean over items of c / n: the expected accuracy of one draw at the
  configured temperature. With temperature 0 and n = 1 it is greedy accuracy.
- Draw d of item i is seeded `draw_seed(seed, i, 0.0, d)` (engine/generation/seeds.py), the seed of
  PISM's unmasked draw d; every model gets the same seeds (paired draws). Both backends honour a
  request's seed exactly (HF through its per-request sampler), so any draw can be reproduced alone,
  whatever else is in its batch or the job.
- Errors (data reason codes such as image_corrupt; engine_error; verifier_error) are rows with a
  reason, never wrong answers: excluded from every accuracy and counted in the summary.
- Deltas (model - baseline) are computed on the items both models evaluated without error.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Sequence

import pyarrow as pa

from engine import __version__
from engine.config import ConfigError, config_hash, from_dict, to_dict
from engine.data.images import ImagePolicy
from engine.data.shards import ShardIndex, index_shards
from engine.generation.base import GenerationConfig
from engine.ray_session import init_ray
from engine.tracking import WandbConfig
from pipelines.driver import Scorer, actor_stage, problem_counts, provenance, publish_summary, score
from pipelines.generate import ActorPoolConfig
from pipelines.llm_batch import check_runner, resolve_runner
from pipelines.resumable import job_stamp, output_schema, problem_rows


OUTPUT_COLUMNS = ["id", "task", "split", "model", "n", "c", "pass_rate", "draws_passed", "draws_score", "draws_tokens", "draws_extracted",
                  "outputs", "tokens", "truncated", "error", "error_detail"]
OUTPUT_SCHEMA = output_schema(OUTPUT_COLUMNS, n=pa.int64(), c=pa.int64(), pass_rate=pa.float64(), draws_passed=pa.list_(pa.bool_()),
                              draws_score=pa.list_(pa.float64()), draws_tokens=pa.list_(pa.int64()), draws_extracted=pa.list_(pa.string()),
                              outputs=pa.list_(pa.string()), tokens=pa.int64(), truncated=pa.int64())
ACCURACY_DEFINITION = "pass@1: mean over items of c/n (n seeded draws per item at the configured temperature); greedy accuracy when temperature=0 and n=1"
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class EvalJobConfig:
    input: str = ""  # held-out canonical parquet shards (e.g. <corpus>/test)
    output: str = ""  # job directory: <label>/{parts,scores.parquet,quarantine.parquet}, results.parquet, summary.json, plots, report.html
    models: dict[str, str] = field(default_factory=dict)  # label -> local HF model folder, in report order, e.g. {before: ..., after: ...}
    baseline: str = ""  # the label deltas are measured from (default: the first model)
    n: int = 8  # draws per item
    k: list[int] = field(default_factory=lambda: [1, 2, 4, 8])  # pass@k reported for each k (1 <= k <= n)
    seed: int = 0  # draw d of item i is seeded draw_seed(seed, i, 0.0, d), the same for every model
    generation: GenerationConfig = field(default_factory=lambda: GenerationConfig(backend="vllm", temperature=0.7, max_new_tokens=24))
    images: ImagePolicy = field(default_factory=ImagePolicy)  # image roots and limits, as `gradus data convert` takes them
    actors: ActorPoolConfig = field(default_factory=ActorPoolConfig)
    # the draws are the same on every runner; "actor" keeps one engine per actor of the pool (docs/evaluation.md)
    runner: str = "auto"  # "auto" (ray.data.llm on vLLM, pipelines/llm_batch.py; the actor pool on HF), "actor" or "ray_data_llm"
    limit: int = 0  # 0 = every item; else a stable subset: the `limit` ids ranked first by sha256(id) (spread over tasks, same for every model)
    rows_per_block: int = 64  # unit of streaming writes and of resume
    wandb: WandbConfig = field(default_factory=WandbConfig)

    def validate(self) -> None:
        check_draws(self.n, self.generation.temperature, "eval")
        if not self.k:
            raise ConfigError("eval: k must list at least one k (e.g. k=[1,2,4,8])")
        bad = [k for k in self.k if not 1 <= k <= self.n]
        if bad:
            raise ConfigError(f"eval: pass@k needs 1 <= k <= n draws per item; k={bad} with n={self.n} (raise n or drop those k)")
        if self.limit < 0 or self.rows_per_block < 1:
            raise ConfigError("eval: need limit >= 0 and rows_per_block >= 1")
        self.actors.validate()
        check_runner(self.runner, self.generation.backend, "eval")
        self.wandb.validate()

    def require_paths(self) -> None:
        if not self.input or not self.output or not self.models:
            raise ConfigError("eval: input, output and models are required (e.g. input=<corpus>/test output=outputs/eval "
                              "models.before=<folder> models.after=<folder>)")
        for label, path in self.models.items():
            if not _LABEL.match(label):
                raise ConfigError(f"eval: model label {label!r} must match {_LABEL.pattern} (it names a directory)")
            if not path or not Path(path).exists():
                raise ConfigError(f"eval: models.{label} = {path!r} does not exist")
        if self.baseline and self.baseline not in self.models:
            raise ConfigError(f"eval: baseline {self.baseline!r} is not one of the models {list(self.models)}")
        if self.generation.model_path:
            raise ConfigError("eval: leave generation.model_path empty; the models map names every model")

    @property
    def baseline_label(self) -> str:
        return self.baseline or next(iter(self.models))


def check_draws(n: int, temperature: float, job: str) -> None:
    if n < 1:
        raise ConfigError(f"{job}: n (draws per item) must be >= 1")
    if temperature == 0 and n > 1:
        raise ConfigError(f"{job}: temperature 0 makes all n={n} draws identical; use temperature > 0, or n=1 for greedy")


# ----- shared with pipelines/rejection_sample.py -----

def load_items(batch, policy):
    """Sample rows -> (row stub, sample, images) for good rows and (row stub, reason, detail) for bad ones."""
    from engine.data.reasons import SampleError
    from engine.data.sample import Sample, validate_sample

    good, bad = [], []
    for raw in batch.to_dict("records"):
        stub = {"id": str(raw.get("id")), "task": raw.get("task"), "split": raw.get("split")}
        try:
            sample = validate_sample(Sample.from_row(raw), policy, decode=False)
            good.append((stub, sample, sample.load_images(policy)))
        except SampleError as err:
            bad.append((stub, err.reason.value, err.detail))
    return good, bad


def ranked_items(input_path: str, limit: int) -> ShardIndex:
    """The input's items: all of them, or the `limit` ids ranked first by sha256(id): a stable,
    task-mixed subset (the same for every model and every rerun; a larger limit is a superset)."""
    index = index_shards(input_path)
    if not limit:
        return index
    return index.restrict(sorted(index.ids, key=lambda i: hashlib.sha256(i.encode()).digest())[:limit])


# ----- the actor -----

class EvalActor:
    """One engine (one model) per actor for the whole job; a batch becomes one row per item."""

    def __init__(self, generation: dict, n: int, seed: int, label: str, provenance: dict, images: dict | None = None):
        from engine.generation.factory import make_backend

        self.backend = make_backend(from_dict(GenerationConfig, generation))
        self.n, self.seed, self.label, self.provenance = n, seed, label, provenance
        self.policy = from_dict(ImagePolicy, images or {})

    def __call__(self, batch):
        from engine.generation.verified import sample_and_verify

        good, bad = load_items(batch, self.policy)
        draws = sample_and_verify([(s, imgs) for _, s, imgs in good], self.backend, self.n, self.seed)
        rows = [_error_row(stub, self.label, code, detail) for stub, code, detail in bad]
        rows += [_item_row(stub, self.label, d) for (stub, _, _), d in zip(good, draws)]
        return SCORER.frame(rows, self.provenance)


def error_frame(failed: Sequence[tuple[dict, str, str]], label: str, provenance: dict):
    """Rows of items that could not be drawn on, from (row stub, reason code, detail)."""
    return SCORER.frame([_error_row(stub, label, code, detail) for stub, code, detail in failed], provenance)


def item_frame(items: Sequence[tuple[dict, object]], label: str, provenance: dict):
    """Rows of items drawn on, from (row stub, `Verified` draws)."""
    return SCORER.frame([_item_row(stub, label, d) for stub, d in items], provenance)


def _error_row(stub: dict, label: str, code: str, detail: str) -> dict:
    return SCORER.blank(**stub, model=label, error=code, error_detail=detail)


def _item_row(stub: dict, label: str, d) -> dict:
    row = SCORER.blank(**stub, model=label, error=d.error, error_detail=d.error_detail)
    if d.texts:
        c = sum(d.passed)
        row.update(n=len(d.passed), c=c, pass_rate=c / len(d.passed), draws_passed=d.passed, draws_score=d.scores, draws_tokens=d.tokens,
                   draws_extracted=d.extracted, outputs=d.texts, tokens=sum(d.tokens), truncated=sum(f == "length" for f in d.finish))
    return row


SCORER = Scorer("eval", OUTPUT_SCHEMA, EvalActor, metric="pass_rate")


def _stage(cfg: EvalJobConfig, label: str, path: str, prov: dict, images: dict):
    """The vLLM backend's draws are plain batch generation: ray.data.llm (pipelines/llm_batch.py);
    the HF backend keeps the actor (one HF model per actor)."""
    gen = from_dict(GenerationConfig, {**to_dict(cfg.generation), "model_path": path})
    if resolve_runner(cfg.runner, gen.backend) == "actor":
        return actor_stage(SCORER, {"generation": to_dict(gen), "n": cfg.n, "seed": cfg.seed, "label": label, "provenance": prov,
                                    "images": images}, cfg.actors.remote_args())

    def run(ds):
        from pipelines import llm_batch

        yield from llm_batch.error_frames(ds, images, partial(error_frame, label=label, provenance=prov))
        draws = llm_batch.draw_frames(ds, gen, cfg.actors, images, cfg.n, cfg.seed, per_draw_seeds=True)
        yield from llm_batch.grouped_items(draws, cfg.n, llm_batch.StopRule.of(gen), partial(item_frame, label=label, provenance=prov))

    return run


# ----- summary -----

def _ok(frame):
    return frame[frame["error"].isna() & frame["n"].notna()]


def pass_at_k_table(frame, ks: Sequence[int]) -> dict:
    """accuracy (pass@1) and pass@k over the error-free rows of `frame` (columns n, c)."""
    from engine.verifiers.passk import mean_pass_at_k

    ok = _ok(frame)
    counts = [(int(n), int(c)) for n, c in zip(ok["n"], ok["c"])]
    if not counts:
        return {"items": 0, "accuracy": None, "pass_at_k": {str(k): None for k in ks}}
    return {"items": len(counts), "accuracy": round(mean_pass_at_k(counts, 1), 6),
            "pass_at_k": {str(k): round(mean_pass_at_k(counts, k), 6) for k in ks}}


def model_summary(frame, bad, ks: Sequence[int]) -> dict:
    """One model's numbers: overall and per task, plus what was left out and why."""
    ok = _ok(frame[~bad])
    overall = pass_at_k_table(frame[~bad], ks)
    return {
        "rows": int(len(frame)),
        "evaluated": overall["items"],
        "accuracy": overall["accuracy"],
        "pass_at_k": overall["pass_at_k"],
        "per_task": {t: pass_at_k_table(g, ks) for t, g in ok.groupby("task")},
        **problem_counts(frame, bad),
        "draws": int(ok["n"].sum()),
        "tokens": int(ok["tokens"].sum()),
        "truncated_draws": int(ok["truncated"].sum()),
    }


def _minus(a: dict, b: dict) -> dict:
    def d(x, y):
        return None if x is None or y is None else round(x - y, 6)

    return {"items": a["items"], "accuracy": d(a["accuracy"], b["accuracy"]),
            "pass_at_k": {k: d(a["pass_at_k"][k], b["pass_at_k"][k]) for k in a["pass_at_k"]}}


def deltas(frames: dict, baseline: str, ks: Sequence[int]) -> dict:
    """model - baseline for every other model, on the items both evaluated without error (paired)."""
    base = _ok(frames[baseline])
    out = {}
    for label, frame in frames.items():
        if label == baseline:
            continue
        ok = _ok(frame)
        paired = sorted(set(ok["id"]) & set(base["id"]))
        a, b = ok[ok["id"].isin(paired)], base[base["id"].isin(paired)]
        overall = _minus(pass_at_k_table(a, ks), pass_at_k_table(b, ks))
        per_task = {t: _minus(pass_at_k_table(g, ks), pass_at_k_table(b[b["task"] == t], ks)) for t, g in a.groupby("task")}
        out[label] = {"vs": baseline, "paired_items": overall.pop("items"), **overall,
                      "per_task": {t: {"paired_items": v.pop("items"), **v} for t, v in per_task.items()}}
    return out


def write_plots(summary: dict, out: Path) -> list[Path]:
    """accuracy_per_task.png (pass@1 bars per task and overall, one bar per model) and pass_at_k.png
    (pass@k curves per model: overall, and one panel per task)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = summary["models"]
    labels = list(models)
    tasks = sorted({t for m in models.values() for t in m["per_task"]})
    groups = tasks + ["overall"]
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(groups) * max(1, len(labels)) / 2 + 2), 4))
    width = 0.8 / max(1, len(labels))
    for i, label in enumerate(labels):
        m = models[label]
        vals = [(m["per_task"].get(t) or {}).get("accuracy") or 0.0 for t in tasks] + [m["accuracy"] or 0.0]
        bars = ax.bar([g + i * width for g in range(len(groups))], vals, width, label=label)
        ax.bar_label(bars, fmt="%.2f", fontsize=6)
    ax.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))], groups, rotation=20)
    ax.set_ylabel(f"accuracy (pass@1, n={summary['n']})")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"Accuracy per task (temperature {summary['temperature']:g})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    acc = out / "accuracy_per_task.png"
    fig.savefig(acc, dpi=120)
    plt.close(fig)

    ks = summary["k"]
    panels = ["overall"] + tasks
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False, sharey=True)
    for ax, panel in zip(axes.flat, panels):
        for label in labels:
            m = models[label] if panel == "overall" else models[label]["per_task"].get(panel)
            if not m or m["pass_at_k"][str(ks[0])] is None:
                continue
            ax.plot(ks, [m["pass_at_k"][str(k)] for k in ks], marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_ylim(0, 1.02)
        ax.set_title(panel, fontsize=9)
        ax.set_xlabel("k", fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[0].set_ylabel("pass@k")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"pass@k (unbiased estimator, n={summary['n']})", fontsize=10)
    fig.tight_layout()
    curves = out / "pass_at_k.png"
    fig.savefig(curves, dpi=120)
    plt.close(fig)
    return [acc, curves]


def _write_report(out: Path, summary: dict) -> Path:
    from engine.html_report import write_html_report

    ks = [str(k) for k in summary["k"]]
    headline = {k: summary[k] for k in ("input", "n", "k", "temperature", "backend", "seed", "baseline", "accuracy_definition",
                                        "gradus_version", "wall_s")}
    per_model, per_task, delta_rows, problems = [], [], [], []
    for label, m in summary["models"].items():
        per_model.append({"model": label, "items": m["evaluated"], "accuracy": m["accuracy"], **{f"pass@{k}": m["pass_at_k"][k] for k in ks},
                          "errors": sum(m["errors"].values()), "quarantined": sum(m["quarantined"].values()), "tokens": m["tokens"],
                          "model_path": m["model_path"]})
        for t, v in m["per_task"].items():
            per_task.append({"task": t, "model": label, "items": v["items"], "accuracy": v["accuracy"], **{f"pass@{k}": v["pass_at_k"][k] for k in ks}})
        problems += [{"model": label, **r} for r in problem_rows(m)]
    for label, d in summary["deltas"].items():
        for scope, v in [("overall", d)] + sorted(d["per_task"].items()):
            delta_rows.append({"model": f"{label} - {d['vs']}", "scope": scope, "paired items": v["paired_items"], "accuracy": v["accuracy"],
                               **{f"pass@{k}": v["pass_at_k"][k] for k in ks}})
    tables = {"Accuracy and pass@k per model": per_model, "Deltas against the baseline (paired items)": delta_rows,
              "Per task": sorted(per_task, key=lambda r: (r["task"], list(summary["models"]).index(r["model"]))),
              "Quarantined and errored rows (excluded from every number)": problems}
    return write_html_report(out / "report.html", f"Evaluation: {out.name}", headline, tables, [Path(p) for p in summary["plots"]], summary)


def _wandb_numbers(summary: dict) -> dict:
    flat = {"wall_s": summary["wall_s"]}
    for label, m in summary["models"].items():
        flat[f"{label}/accuracy"] = m["accuracy"]
        flat.update({f"{label}/pass@{k}": v for k, v in m["pass_at_k"].items()})
        flat.update({f"{label}/{t}/accuracy": v["accuracy"] for t, v in m["per_task"].items()})
    for label, d in summary["deltas"].items():
        flat[f"delta/{label}/accuracy"] = d["accuracy"]
        flat.update({f"delta/{label}/pass@{k}": v for k, v in d["pass_at_k"].items()})
    return {k: v for k, v in flat.items() if v is not None}


def model_fingerprint(path: str) -> str:
    """The weights' identity: a model retrained into the same folder must not inherit the old model's rows."""
    folder = Path(path)
    files = sorted(f for f in folder.glob("*") if f.suffix in (".safetensors", ".bin", ".json") and f.is_file())
    return config_hash({"files": [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]})


def _model_hash(cfg: EvalJobConfig, path: str) -> str:
    """What decides a model's rows: the model (path and weights), the sampling settings, n and the seed (not k, not where it is written)."""
    gen = {**to_dict(cfg.generation), "model_path": ""}
    return config_hash({"model_path": path, "weights": model_fingerprint(path), "generation": gen, "n": cfg.n, "seed": cfg.seed})


def _stamp(cfg: EvalJobConfig, path: str) -> dict:
    return job_stamp(_model_hash(cfg, path), cfg.input, cfg.images.absolute())


def stale_models(cfg: EvalJobConfig) -> list[str]:
    """Labels whose output folder holds rows of another model, config, input or image policy (a rerun would refuse them)."""
    stale = []
    for label, path in cfg.models.items():
        stamp = Path(cfg.output) / label / "job.json"
        if stamp.exists() and json.loads(stamp.read_text()) != _stamp(cfg, path):
            stale.append(label)
    return stale


def run_eval(cfg: EvalJobConfig) -> dict:
    import pandas as pd

    cfg.validate()
    cfg.require_paths()
    started = time.time()
    init_ray()
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    items = ranked_items(cfg.input, cfg.limit)
    images = cfg.images.absolute()
    frames, models = {}, {}
    for label, path in cfg.models.items():
        model_started = time.time()
        prov = provenance(path, _model_hash(cfg, path), cfg.seed)
        stage = _stage(cfg, label, path, prov, to_dict(images))
        run = score(SCORER, out / label, _stamp(cfg, path), items, stage, cfg.rows_per_block, {"model": label, **prov}, subset=bool(cfg.limit),
                    desc=f"eval {label}")
        frames[label] = run.frame[~run.bad]
        models[label] = {"model_path": path, **model_summary(run.frame, run.bad, cfg.k), **prov,
                         "wall_s": round(time.time() - model_started, 1)}
    pd.concat([f.assign(model=label) for label, f in frames.items()], ignore_index=True).to_parquet(out / "results.parquet", index=False)
    summary = {
        "input": cfg.input,
        "items": models[cfg.baseline_label]["rows"],  # quarantined rows included
        "n": cfg.n,
        "k": list(cfg.k),
        "temperature": cfg.generation.temperature,
        "backend": cfg.generation.backend,
        "seed": cfg.seed,
        "baseline": cfg.baseline_label,
        "accuracy_definition": ACCURACY_DEFINITION,
        "models": models,
        "deltas": deltas(frames, cfg.baseline_label, cfg.k),
        "gradus_version": __version__,
        "wall_s": round(time.time() - started, 1),
    }
    summary["plots"] = [str(p) for p in write_plots(summary, out)]
    return publish_summary(out, summary, wandb=cfg.wandb, job="eval", config=to_dict(cfg), numbers=_wandb_numbers(summary),
                           report=_write_report)
