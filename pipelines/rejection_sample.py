"""Rejection-sampling SFT data on Ray Data: n sampled responses per training item, keep the verified ones.

The job's items (all, or a stable `limit`-sized subset) -> the scoring driver (pipelines/driver.py:
drop ids already done, stream parts, consolidate; a killed job rerun with the same command resumes)
-> n seeded draws per item (vLLM: ray.data.llm's processor, pipelines/llm_batch.py; HF, or
runner=actor: RejectionActor on an actor pool; the same draws either way) -> every draw judged by
the item's own verifier -> the keep rules (Keeper) -> `scores.parquet`
(one row per item: n, c, kept responses, filter counts) + `quarantine.parquet`, then
`shards/` (canonical SFT shards, one sample per kept response) + `summary.json` + yield plot +
`report.html` + a wandb run.

Which responses are kept, per item, in draw order: the verifier passed; not cut at
max_new_tokens (unless keep_truncated); text not already kept for this item (distinct texts);
at most keep_per_item (0: no cap); and, with check_collator, rl/sft's collator finds the
response's tokens in the training sequence (rl/sft/collate.build_batch, run on the written
sample), so the shards never fail in SFT.

The written sample for a kept response of item X, draw d: id `X-rs<d>`, X's images and prompt
turns, then an assistant turn holding the response, and `answer` = the response itself. rl/sft
builds the assistant turn as `response_template.format(answer=answer)` and trains on it, so these
shards are trained with the pass-through template `response_template: "{answer}"` (the response
already carries its format, e.g. `\\boxed{3}` or `<think>..</think><answer>..</answer>`). X's
ground truth, the draw, its seed and the provenance are in `meta.rejection_sampling`. These
shards are SFT targets: `answer` is not a ground truth any more, so do not score or GRPO on them.

Only the rule-verifier criterion is implemented. The judge criterion of Curr-ReFT (a judge
model's score >= 85/100) is not: there is no local judge model worth the name here, and no stub
stands in for it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow as pa

from engine.config import ConfigError, config_hash, from_dict, to_dict
from engine.data.images import ImagePolicy
from engine.data.shards import ShardIndex
from engine.generation.base import GenerationConfig
from engine.publish import publish_dir
from engine.ray_session import init_ray
from engine.tracking import WandbConfig
from pipelines.driver import Scorer, actor_stage, problem_counts, provenance, publish_summary, score
from pipelines.evaluate import check_draws, load_items, ranked_items
from pipelines.generate import ActorPoolConfig
from pipelines.inputs import read_shard_rows
from pipelines.llm_batch import check_runner, resolve_runner
from pipelines.resumable import job_stamp, output_schema, problem_rows

OUTPUT_COLUMNS = ["id", "task", "split", "n", "c", "kept", "kept_draws", "draws_passed", "tokens", "duplicates", "truncated",
                  "over_limit", "untrainable", "error", "error_detail"]
OUTPUT_SCHEMA = output_schema(OUTPUT_COLUMNS, n=pa.int64(), c=pa.int64(), kept=pa.list_(pa.string()), kept_draws=pa.list_(pa.int64()),
                              draws_passed=pa.list_(pa.bool_()), tokens=pa.int64(), duplicates=pa.int64(), truncated=pa.int64(),
                              over_limit=pa.int64(), untrainable=pa.int64())
SFT_RESPONSE_TEMPLATE = "{answer}"  # rl/sft's response_template for these shards: the kept response is the whole assistant turn


@dataclass
class RejectionSampleConfig:
    input: str = ""  # canonical parquet shards to sample on (e.g. <corpus>/train)
    output: str = ""  # job directory: scores.parquet, quarantine.parquet, shards/, summary.json, yield_per_task.png, report.html, parts/
    model_path: str = ""  # the model that samples (local HF folder)
    model_id: str = ""  # the model's name in every output's provenance (default: the model path)
    n: int = 8  # sampled responses per item
    seed: int = 0  # draw d of item i is seeded draw_seed(seed, i, 0.0, d) (as in eval and PISM's unmasked draws)
    keep_per_item: int = 0  # at most this many distinct verified responses per item (0: every distinct one)
    keep_truncated: bool = False  # keep verified responses that hit max_new_tokens (finish reason "length")
    check_collator: bool = True  # keep only responses rl/sft's collator can train on (it checks the response tokens in context)
    generation: GenerationConfig = field(default_factory=lambda: GenerationConfig(backend="vllm", temperature=1.0, max_new_tokens=24))
    images: ImagePolicy = field(default_factory=ImagePolicy)  # image roots and limits, as `gradus data convert` takes them
    actors: ActorPoolConfig = field(default_factory=ActorPoolConfig)
    runner: str = "auto"  # "auto" (ray.data.llm on vLLM, the actor pool on HF), "actor" or "ray_data_llm"; same draws on each
    limit: int = 0  # 0 = every item; else the `limit` ids ranked first by sha256(id) (stable, spread over tasks)
    rows_per_block: int = 64  # unit of streaming writes and of resume
    rows_per_shard: int = 512  # SFT shards
    wandb: WandbConfig = field(default_factory=WandbConfig)

    def validate(self) -> None:
        check_draws(self.n, self.generation.temperature, "rejection-sample")
        if self.keep_per_item < 0 or self.limit < 0 or self.rows_per_block < 1 or self.rows_per_shard < 1:
            raise ConfigError("rejection-sample: need keep_per_item >= 0, limit >= 0, rows_per_block >= 1, rows_per_shard >= 1")
        self.actors.validate()
        check_runner(self.runner, self.generation.backend, "rejection-sample")
        self.wandb.validate()

    def require_paths(self) -> None:
        if not self.input or not self.output or not self.model_path:
            raise ConfigError("rejection-sample: input, output and model_path are required (e.g. input=<corpus>/train output=outputs/rs model_path=...)")
        if not Path(self.model_path).exists():
            raise ConfigError(f"rejection-sample: model_path {self.model_path} does not exist")
        if self.generation.model_path and self.generation.model_path != self.model_path:
            raise ConfigError("rejection-sample: generation.model_path must be empty or equal model_path")

    def sampling_generation(self) -> GenerationConfig:
        """`generation` with the sampling model filled in: what either runner's engine is started with."""
        return from_dict(GenerationConfig, {**to_dict(self.generation), "model_path": self.model_path})


def sft_sample(sample, response: str, draw: int, info: dict):
    """The canonical SFT sample for one kept response (see the module docstring)."""
    from engine.data.sample import Message, Sample

    meta = {**sample.meta, "rejection_sampling": {"source_id": sample.id, "ground_truth": sample.answer, "draw": draw, **info}}
    return Sample(id=f"{sample.id}-rs{draw}", images=list(sample.images), messages=[*sample.prompt_messages, Message("assistant", response)],
                  answer=response, task=sample.task, verifier=sample.verifier, verifier_params=dict(sample.verifier_params),
                  domain=sample.domain, source=sample.source, split=sample.split, meta=meta)


def _draw_info(cfg_seed: int, sample_id: str, draw: int, provenance: dict) -> dict:
    from engine.generation.seeds import draw_seed

    return {"draw_seed": draw_seed(cfg_seed, sample_id, 0.0, draw), "response_template": SFT_RESPONSE_TEMPLATE, **provenance}


def error_rows(failed) -> list[dict]:
    """Rows of items that could not be sampled, from (row stub, reason code, detail): either runner."""
    return [SCORER.blank(**stub, error=code, error_detail=detail) for stub, code, detail in failed]


class Keeper:
    """Which of an item's verified draws are kept (the module docstring's rules, in draw order), on either runner."""

    def __init__(self, cfg: "RejectionSampleConfig", processor=None):
        self.cfg = cfg
        self._processor = processor  # rl/sft's collator needs the model's processor; loaded on first use if not given

    def _trainable(self, sft) -> bool:
        """rl/sft's own collator on the written sample: False when it cannot find the response tokens."""
        from rl.sft.collate import build_batch

        if self._processor is None:
            from transformers import AutoProcessor

            self._processor = AutoProcessor.from_pretrained(self.cfg.model_path, local_files_only=True)
        try:
            build_batch([sft], self._processor, SFT_RESPONSE_TEMPLATE, self.cfg.images)
        except ValueError:
            return False
        return True

    def row(self, stub: dict, sample, d) -> dict:
        """One item's output row from its `Verified` draws."""
        cfg = self.cfg
        row = SCORER.blank(**stub, error=d.error, error_detail=d.error_detail)
        if d.error:
            return row
        kept, kept_draws, seen = [], [], set()
        counts = {"duplicates": 0, "truncated": 0, "over_limit": 0, "untrainable": 0}
        for draw, (text, passed, finish) in enumerate(zip(d.texts, d.passed, d.finish)):
            if not passed:
                continue
            if finish == "length" and not cfg.keep_truncated:
                counts["truncated"] += 1
            elif text in seen:
                counts["duplicates"] += 1
            elif cfg.keep_per_item and len(kept) >= cfg.keep_per_item:
                counts["over_limit"] += 1
            elif cfg.check_collator and not self._trainable(sft_sample(sample, text, draw, {})):
                counts["untrainable"] += 1
            else:
                kept.append(text)
                kept_draws.append(draw)
            seen.add(text)
        row.update(n=len(d.passed), c=sum(d.passed), kept=kept, kept_draws=kept_draws, draws_passed=d.passed, tokens=sum(d.tokens), **counts)
        return row


class RejectionActor:
    """The actor runner (runner=actor, and the HF backend): one engine per actor; a batch becomes one row per item."""

    def __init__(self, job: dict, provenance: dict):
        from engine.generation.factory import make_backend

        self.cfg = from_dict(RejectionSampleConfig, job)
        self.backend = make_backend(self.cfg.sampling_generation())
        self.provenance = provenance
        self.keeper = Keeper(self.cfg, getattr(self.backend, "processor", None))

    def __call__(self, batch):
        from engine.generation.verified import sample_and_verify

        cfg = self.cfg
        good, bad = load_items(batch, cfg.images)
        rows = error_rows(bad)
        draws = sample_and_verify([(s, imgs) for _, s, imgs in good], self.backend, cfg.n, cfg.seed)
        rows += [self.keeper.row(stub, sample, d) for (stub, sample, _), d in zip(good, draws)]
        return SCORER.frame(rows, self.provenance)


SCORER = Scorer("rejection-sample", OUTPUT_SCHEMA, RejectionActor)


def _stage(cfg: RejectionSampleConfig, prov: dict, images: ImagePolicy):
    """The draws are plain batch generation: on the vLLM backend they run on ray.data.llm
    (pipelines/llm_batch.py), which carries each input row past the engine so the driver can apply
    the keep rules (rl/sft's collator needs the sample); the HF backend keeps the actor pool."""
    if resolve_runner(cfg.runner, cfg.generation.backend) == "actor":
        return actor_stage(SCORER, {"job": to_dict(cfg) | {"images": to_dict(images)}, "provenance": prov}, cfg.actors.remote_args())
    gen = cfg.sampling_generation()
    keeper = Keeper(replace(cfg, images=images))  # runs in the driver: the job's absolute image policy

    def error_frame(failed):
        return SCORER.frame(error_rows(failed), prov)

    def item_frame(items):
        from engine.data.sample import Sample

        return SCORER.frame([keeper.row(stub, Sample.from_row(raw), d) for stub, d, raw in items], prov)

    def run(ds):
        from pipelines import llm_batch

        policy = to_dict(images)
        yield from llm_batch.error_frames(ds, policy, error_frame)
        draws = llm_batch.draw_frames(ds, gen, cfg.actors, policy, cfg.n, cfg.seed, per_draw_seeds=True, carry_source=True)
        yield from llm_batch.grouped_items(draws, cfg.n, llm_batch.StopRule.of(gen), item_frame, with_source=True)

    return run


def _write_shards(cfg: RejectionSampleConfig, items: ShardIndex, kept: dict[str, list[tuple[int, str]]], provenance: dict,
                  out: Path) -> tuple[Path, int]:
    """Rebuild the kept samples from the rows `items` picked (input order, one pass, chunked) into out/shards/ atomically."""
    final = out / "shards"
    with publish_dir(final) as tmp:
        tmp.mkdir(parents=True)
        written = _write_kept(cfg, items, kept, provenance, tmp)
    return final, written


def _write_kept(cfg: RejectionSampleConfig, items: ShardIndex, kept: dict[str, list[tuple[int, str]]], provenance: dict,
                tmp: Path) -> int:
    from engine.data.reasons import SampleError
    from engine.data.sample import Sample, validate_sample
    from engine.data.shards import write_shards

    buffer, written, part = [], 0, 0

    def flush():
        nonlocal buffer, part
        write_shards(buffer, tmp, rows_per_shard=cfg.rows_per_shard, prefix=f"part-{part:05d}")
        part, buffer = part + 1, []

    for path, rows in zip(items.paths, items.rows):
        for table in read_shard_rows(str(path), np.asarray(rows, dtype=np.int64)):
            for raw in table.to_pylist():
                rid = str(raw.get("id"))
                if rid not in kept:
                    continue
                try:
                    sample = Sample.from_row(raw)
                except SampleError:  # it was sampled, so it parsed in the actor; a changed input is not ours to fix
                    continue
                for draw, text in kept[rid]:
                    buffer.append(validate_sample(sft_sample(sample, text, draw, _draw_info(cfg.seed, sample.id, draw, provenance)), decode=False))
                    written += 1
                if len(buffer) >= cfg.rows_per_shard:
                    flush()
    if buffer or not written:
        flush()  # an empty result still gets one (empty) shard with the schema
    return written


def _write_plot(per_task: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted(per_task)
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(tasks) + 2), 4))
    x = range(len(tasks))
    bars = ax.bar([i - 0.2 for i in x], [per_task[t]["yield"] for t in tasks], 0.4, label="items with >= 1 kept response")
    ax.bar_label(bars, fmt="%.2f", fontsize=7)
    bars = ax.bar([i + 0.2 for i in x], [per_task[t]["pass_rate"] for t in tasks], 0.4, label="draws verified (c/n)")
    ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(list(x), tasks, rotation=20)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("share")
    ax.set_title("Rejection sampling yield per task")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / "yield_per_task.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _write_report(out: Path, summary: dict) -> Path:
    from engine.html_report import write_html_report

    headline = {k: summary[k] for k in ("items", "sampled", "items_kept", "kept", "dropped_none_correct", "n", "keep_per_item", "temperature",
                                        "backend", "shards", "model_id", "config_hash", "seed", "gradus_version", "wall_s")}
    tables = {"Per task": [{"task": t, **v} for t, v in sorted(summary["per_task"].items())],
              "Verified responses not kept": [{"why": k, "responses": v} for k, v in summary["filtered"].items()],
              "Quarantined and errored rows": problem_rows(summary)}
    return write_html_report(out / "report.html", f"Rejection sampling: {out.name}", headline, tables, [Path(p) for p in summary["plots"]], summary)


def run_rejection_sample(cfg: RejectionSampleConfig) -> dict:
    cfg.validate()
    cfg.require_paths()
    started = time.time()
    init_ray()
    out = Path(cfg.output)
    # What decides an item's row (not k-independent reporting, not where it is written).
    gen = {**to_dict(cfg.generation), "model_path": ""}
    chash = config_hash({"model_path": cfg.model_path, "generation": gen, "n": cfg.n, "seed": cfg.seed, "keep_per_item": cfg.keep_per_item,
                         "keep_truncated": cfg.keep_truncated, "check_collator": cfg.check_collator})
    images = cfg.images.absolute()
    items = ranked_items(cfg.input, cfg.limit)
    prov = provenance(cfg.model_id or cfg.model_path, chash, cfg.seed)
    stage = _stage(cfg, prov, images)
    run = score(SCORER, out, job_stamp(chash, cfg.input, images), items, stage, cfg.rows_per_block, prov, subset=bool(cfg.limit))
    frame, bad = run.frame, run.bad
    ok = frame[~bad & frame["error"].isna() & frame["n"].notna()]
    kept = {r.id: list(zip((int(d) for d in r.kept_draws), r.kept)) for r in ok.itertuples() if len(r.kept)}
    shards, written = _write_shards(cfg, items, kept, prov, out)
    n_kept = ok["kept"].map(len)
    per_task = {}
    for task, g in ok.groupby("task"):
        k = n_kept[g.index]
        per_task[task] = {"items": int(len(g)), "items_kept": int((k > 0).sum()), "kept": int(k.sum()),
                          "yield": round(float((k > 0).mean()), 4), "pass_rate": round(float((g["c"] / g["n"]).mean()), 4),
                          "dropped_none_correct": int((g["c"] == 0).sum())}
    none_correct = sorted(ok.loc[ok["c"] == 0, "id"])
    summary = {
        "items": int(len(frame)),
        "sampled": int(len(ok)),
        "items_kept": int((n_kept > 0).sum()),
        "kept": int(n_kept.sum()),
        "shard_rows": written,
        "dropped_none_correct": len(none_correct),
        "dropped_ids": none_correct[:50],  # the first 50, sorted; scores.parquet has them all (c == 0)
        "per_task": per_task,
        "filtered": {k: int(ok[k].sum()) for k in ("duplicates", "truncated", "over_limit", "untrainable")},
        **problem_counts(frame, bad),
        "draws": int(ok["n"].sum()),
        "tokens": int(ok["tokens"].sum()),
        "n": cfg.n,
        "keep_per_item": cfg.keep_per_item,
        "temperature": cfg.generation.temperature,
        "backend": cfg.generation.backend,
        "shards": str(shards),
        "sft": {"train_data": str(shards), "response_template": SFT_RESPONSE_TEMPLATE},  # how rl/sft trains on them
        **prov,
        "wall_s": round(time.time() - started, 1),
    }
    summary["plots"] = [str(_write_plot(per_task, out))] if per_task else []
    flat = {k: v for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    flat.update({f"{t}/yield": v["yield"] for t, v in per_task.items()})
    return publish_summary(out, summary, wandb=cfg.wandb, job="rejection-sample", config=to_dict(cfg), numbers=flat, report=_write_report)
