"""The one scoring driver: every per-sample job (PISM, CMAB, evaluation, rejection sampling) runs here.

    picked input rows (pipelines/inputs.py) -> drop ids already in parts/ -> blocks of
    `rows_per_block` -> the scorer's stage -> result blocks streamed into parts/ ->
    scores.parquet + quarantine.parquet (pipelines/resumable.py: a kill -9 at any point followed
    by the same command gives the uninterrupted result)

What differs between jobs is plugged in as a `Scorer`, the way data-juicer ops declare the stats
they write: its stage (the actor class that turns a batch of sample rows into result rows), its
output schema, and the difficulty-store metric its scores.parquet feeds (engine/shaping/store.py
METRICS; the schema is checked to carry that metric's columns). A job may hand `score` another
stage for the same scorer (evaluation on ray.data.llm), as long as it yields the same rows.
The job's own maths (summary numbers, plots, report) stays in its recipe; `publish_summary`
writes what every job writes at the end.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import pyarrow as pa

from engine import __version__
from engine.data.shards import ShardIndex
from engine.tracking import WandbConfig, log_summary
from pipelines.inputs import job_rows
from pipelines.resumable import PROVENANCE_SCHEMA, ResumableOutput

# A stage turns the dataset of sample rows still to score into result frames (pandas, the scorer's columns).
Stage = Callable[[Any], Iterable]


@dataclass(frozen=True)
class Scorer:
    """What one scoring job plugs into the driver."""

    name: str  # progress label
    schema: pa.Schema  # every row it writes: its columns, then the provenance columns (pipelines/resumable.output_schema)
    stage: type  # actor class: __init__(**stage_kwargs) once per actor, __call__(pandas batch) -> result frame
    metric: str = ""  # the store metric (engine/shaping/store.METRICS) its scores.parquet feeds; "" = none
    drop: tuple[str, ...] = ()  # kept in parts/ only, left out of scores.parquet and quarantine.parquet

    def __post_init__(self) -> None:
        if self.metric:
            _check_metric(self.metric, self.schema)

    @property
    def columns(self) -> list[str]:
        """The result columns an actor fills (the provenance columns follow)."""
        return self.schema.names[: len(self.schema) - len(PROVENANCE_SCHEMA)]

    def blank(self, **values) -> dict:
        """A result row: every column null, then `values`."""
        return {c: None for c in self.columns} | values

    def frame(self, rows: Sequence[dict], provenance: dict):
        """Result rows as the frame every stage returns: the scorer's columns, then the provenance columns."""
        import pandas as pd

        frame = pd.DataFrame(list(rows), columns=self.columns)
        for key, value in provenance.items():
            frame[key] = value
        return frame


def _check_metric(metric: str, schema: pa.Schema) -> None:
    """The store reads a metric's value columns and its required ones from scores.parquet: the scorer must write them, typed alike."""
    from engine.shaping.store import METRICS

    spec = METRICS[metric]
    for name in spec.required:
        if name not in schema.names:
            raise ValueError(f"scorer for store metric {metric!r} lacks its required column {name!r}")
    for name, kind in spec.values:
        if name not in schema.names or schema.field(name).type != kind:
            raise ValueError(f"scorer for store metric {metric!r}: column {name!r} must be {kind}")


def provenance(model_id: str, chash: str, seed: int) -> dict:
    """The columns every result row carries (PROVENANCE_SCHEMA): who scored it, under which settings."""
    return {"model_id": model_id, "config_hash": chash, "seed": seed, "gradus_version": __version__}


def actor_stage(scorer: Scorer, stage_kwargs: dict, remote_args: dict) -> Stage:
    """The scorer's actor on a pool (one engine or model per actor for the whole job)."""

    def run(ds):
        scored = ds.map_batches(scorer.stage, fn_constructor_kwargs=stage_kwargs, batch_format="pandas", **remote_args)
        return scored.iter_batches(batch_format="pandas", batch_size=None)

    return run


@dataclass
class Scored:
    """A finished scoring run: all rows (one per id, duplicates' quarantine rows after), the bad-data mask, and this run's share."""

    frame: object  # pandas
    bad: object  # pandas bool Series
    todo: int  # rows scored by this run (a resume scores fewer)
    scoring_s: float  # seconds the stage ran


def score(scorer: Scorer, out: str | Path, stamp: dict, index: ShardIndex, stage: Stage, rows_per_block: int, fixed: dict,
          subset: bool = False, desc: str = "") -> Scored:
    """Score `index`'s rows into `out` with `stage`, resuming what parts/ hold.

    `fixed`: the columns of the quarantine rows written for the input's repeated ids. `subset`:
    report only `index`'s ids (a rerun with a smaller limit keeps the larger run's rows on disk). `desc`: the
    progress bar's label (default the scorer's name)."""
    output = ResumableOutput(out, stamp, scorer.schema)
    ds, todo = job_rows(index, output.done_ids(), rows_per_block)
    started = time.time()
    if todo:  # no actor (no engine start) for nothing
        output.stream(stage(ds), todo, desc or scorer.name)
    scoring_s = time.time() - started
    frame, bad = output.finish(drop=scorer.drop, quarantined=[d.record() | fixed for d in index.duplicates])
    if subset:
        keep = frame["id"].isin(set(index.ids))
        frame, bad = frame[keep].reset_index(drop=True), bad[keep].reset_index(drop=True)
    return Scored(frame, bad, todo, scoring_s)


def problem_counts(frame, bad) -> dict:
    """Rows left out of every number, by reason: bad data (quarantine.parquet) and errors kept in scores.parquet."""
    return {"quarantined": frame.loc[bad, "error"].value_counts().to_dict(),
            "errors": frame.loc[~bad, "error"].dropna().value_counts().to_dict()}


def publish_summary(out: Path, summary: dict, *, wandb: WandbConfig, job: str, config: dict, numbers: dict | None = None,
                    report: Callable[[Path, dict], Path]) -> dict:
    """The end of every job: a wandb run (`numbers`, default the summary), the HTML report, summary.json."""
    plots = [Path(p) for p in summary.get("plots", [])]
    summary["wandb_run"] = log_summary(wandb, out, job, config, summary if numbers is None else numbers, plots)
    summary["report"] = str(report(out, summary))
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
