"""Online difficulty refresh: GRPO rollout verdicts -> per-id pass rates the difficulty store joins.

TRL: `RolloutLog` receives every scored completion from rl/grpo/trl_reward.py (sample id from
`extra_info.id`, optimizer step, score, acc, response tokens) and writes one parquet part per
generation round under `<output_dir>/rollouts/` as it goes. A fresh run starts the folder empty; a
run resumed from checkpoint-S drops the parts of steps > S (they are generated again), as
metrics.jsonl does, so a resume neither loses nor repeats rows.

verl: `trainer.rollout_data_dir` makes verl (v0 trainer) write `<step>.jsonl` per training step:
input, output, gts, score, step and every key compute_score returned (ray_trainer
`_write_generations`); rl/reward.py returns the sample id as `sample_id`. `read_verl_dump` turns
those lines into the same rows (response tokens unknown: verl dumps decoded text only).

`pass_rates` groups rows by id: pass_rate = passed / judged attempts, n = judged attempts, with the
run's provenance, stage and step range: what `gradus store build sources.pass_rate@<tag>.path=...`
reads. passed = acc >= 0.5 (gradus's acc is 0/1; an entrypoint that reports no acc has its score
taken as acc, as verl's naive reward manager does). An attempt that could not be judged for a reason
outside the model (bad ground truth, a failing verifier, no or an unknown verifier: the rule PISM
and eval use, VerifyResult.infrastructure_failure) counts neither way; one the model left without a
parseable answer (`no_answer`, ...) is a fail, as it is for PISM.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any, Iterable, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from engine.config import ConfigError
from engine.publish import publish_file, remove_partials
from engine.verifiers.base import VerifyResult

ROLLOUTS_DIR = "rollouts"
PASS_RATES = "pass_rates.parquet"
PASS_THRESHOLD = 0.5
ROLLOUT_SCHEMA = pa.schema([("id", pa.string()), ("step", pa.int64()), ("score", pa.float64()), ("acc", pa.float64()),
                            ("passed", pa.bool_()), ("response_tokens", pa.int64()), ("error", pa.string()),
                            ("error_detail", pa.string())])
PASS_RATE_SCHEMA = pa.schema([("id", pa.string()), ("pass_rate", pa.float64()), ("n", pa.int64()), ("passes", pa.int64()),
                              ("attempts", pa.int64()), ("score_mean", pa.float64()), ("response_tokens_mean", pa.float64()),
                              ("step_first", pa.int64()), ("step_last", pa.int64()), ("error", pa.string()),
                              ("error_detail", pa.string()), ("stage", pa.string()), ("backend", pa.string()),
                              ("run_steps", pa.string()), ("model_id", pa.string()), ("config_hash", pa.string()),
                              ("seed", pa.int64()), ("gradus_version", pa.string())])


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def no_verdict(result: dict[str, Any]) -> str | None:
    """compute_score's reason when the attempt says nothing about the model (module docstring), else None."""
    reason = str(result.get("reason") or "")
    if not _number(result.get("unjudged")) or not reason:
        return None
    infra = VerifyResult(0.0, False, None, reason).infrastructure_failure
    return reason if infra or reason.startswith(("no_verifier", "unknown_verifier")) else None


def rollout_row(sample_id: Any, step: int, result: dict[str, Any], response_tokens: int | None = None) -> dict[str, Any]:
    """One scored completion -> a ROLLOUT_SCHEMA row (verdict as module docstring)."""
    score = _number(result.get("score"))
    acc = _number(result.get("acc"))
    acc = score if acc is None else acc
    row = {"id": None if sample_id is None else str(sample_id), "step": int(step), "score": score, "acc": acc, "passed": None,
           "response_tokens": response_tokens, "error": None, "error_detail": None}
    if no_verdict(result):
        row.update(error="unjudged", error_detail=no_verdict(result))
    elif acc is None:
        row.update(error="no_verdict", error_detail="the reward reported neither a finite acc nor a finite score")
    else:
        row["passed"] = acc >= PASS_THRESHOLD
    return row


class RolloutLog:
    """Per-rollout rows of a TRL run, one parquet part per generation round (written atomically)."""

    def __init__(self, folder: Path, resume_step: int | None = None):
        self.folder = Path(folder)
        if resume_step is None:  # a fresh run: rows of an earlier run in this output_dir are not ours
            shutil.rmtree(self.folder, ignore_errors=True)
        elif self.folder.is_dir():
            remove_partials(self.folder)  # a write cut short by the crash
            for part in self.folder.glob("*.parquet"):
                if int(part.name.split("-")[1]) > resume_step:  # step-<step>-<k>.parquet
                    part.unlink()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.parts: dict[int, int] = {}

    def record(self, trainer_state, extra_infos: Sequence[dict | None], results: Sequence[dict[str, Any]],
               completion_ids: Sequence[Sequence[int]] | None = None) -> Path:
        """Called by VerlRewardFunction once per generation round. The rows' step is the first optimizer
        step that trains on them (TRL's global_step + 1), the numbering of metrics.jsonl and checkpoints."""
        if trainer_state is None:
            raise ValueError("RolloutLog.record needs the trainer state (its global_step numbers the rows)")
        step = int(trainer_state.global_step) + 1
        lengths = [len(ids) for ids in completion_ids] if completion_ids is not None else [None] * len(results)
        rows = [rollout_row((info or {}).get("id"), step, result, length)
                for info, result, length in zip(extra_infos, results, lengths, strict=True)]
        k = self.parts[step] = self.parts.get(step, -1) + 1
        path = self.folder / f"step-{step:07d}-{k}.parquet"
        return publish_file(path, lambda tmp: pq.write_table(pa.Table.from_pylist(rows, schema=ROLLOUT_SCHEMA), tmp))


def read_rollouts(folder: Path) -> pa.Table:
    parts = sorted(Path(folder).glob("*.parquet"))
    if not parts:
        return ROLLOUT_SCHEMA.empty_table()
    return pa.concat_tables([pq.read_table(p, schema=ROLLOUT_SCHEMA) for p in parts])


def read_verl_dump(folder: Path, id_key: str = "sample_id", steps: Iterable[int] | None = None) -> pa.Table:
    """verl's `trainer.rollout_data_dir` (`<step>.jsonl`, one line per response) -> ROLLOUT_SCHEMA rows;
    `steps`: only those steps' files (a long run's dump is large)."""
    files = sorted(Path(folder).glob("*.jsonl"), key=lambda p: (len(p.stem), p.stem))
    if steps is not None:
        wanted = {str(s) for s in steps}
        files = [f for f in files if f.stem in wanted]
    if not files:
        raise FileNotFoundError(f"no verl rollout dump (<step>.jsonl) in {folder}")
    rows = []
    for file in files:
        for lineno, line in enumerate(file.read_text().splitlines(), 1):
            if not line.strip():
                continue
            entry = json.loads(line)
            if id_key not in entry or "step" not in entry:
                raise ConfigError(f"{file}:{lineno}: no {id_key!r} (or step) in verl's dump: the reward entrypoint must return the "
                                  f"sample id as {id_key!r} (rl/reward.py compute_score does); verl's dump has no other identity")
            rows.append(rollout_row(entry[id_key], entry["step"], entry))
    return pa.Table.from_pylist(rows, schema=ROLLOUT_SCHEMA)


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return round(sum(vals) / len(vals), 6) if vals else None


def pass_rates(rollouts: pa.Table, provenance: dict[str, Any], *, stage: str, backend: str) -> pa.Table:
    """One row per sample id (rows without an id are left out; `summarize` counts them)."""
    groups: dict[str, list[dict]] = {}
    for row in rollouts.to_pylist():
        if row["id"] is not None:
            groups.setdefault(row["id"], []).append(row)
    steps = rollouts.column("step").to_pylist()
    run_steps = f"{min(steps)}-{max(steps)}" if steps else ""
    out = []
    for sid in sorted(groups):
        group = groups[sid]
        judged = [r["passed"] for r in group if r["error"] is None]
        row = {"id": sid, "n": len(judged), "passes": sum(judged), "attempts": len(group),
               "pass_rate": sum(judged) / len(judged) if judged else None, "error": None, "error_detail": None,
               "score_mean": _mean(r["score"] for r in group), "response_tokens_mean": _mean(r["response_tokens"] for r in group),
               "step_first": min(r["step"] for r in group), "step_last": max(r["step"] for r in group),
               "stage": stage, "backend": backend, "run_steps": run_steps, **{k: provenance.get(k) for k in
                                                                              ("model_id", "config_hash", "seed", "gradus_version")}}
        if not judged:  # no attempt judged: no verdict, an error row in the store
            first = next(r for r in group if r["error"] is not None)
            row.update(error=first["error"], error_detail=first["error_detail"])
        out.append(row)
    return pa.Table.from_pylist(out, schema=PASS_RATE_SCHEMA)


def write_pass_rates(table: pa.Table, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return publish_file(path, lambda tmp: pq.write_table(table, tmp))


def summarize(rollouts: pa.Table, rates: pa.Table) -> dict[str, Any]:
    """The numbers summary.json carries about the refresh."""
    rows = rates.to_pylist()
    scored = [r["pass_rate"] for r in rows if r["pass_rate"] is not None]
    steps = rollouts.column("step").to_pylist()
    return {
        "ids": len(rows),
        "rollouts": rollouts.num_rows,
        "rollouts_without_id": rollouts.column("id").null_count,
        "unjudged": sum(1 for e in rollouts.column("error").to_pylist() if e is not None),
        "steps": f"{min(steps)}-{max(steps)}" if steps else "",
        "pass_rate_mean": _mean(scored),
        "all_pass": sum(1 for p in scored if p == 1.0),
        "all_fail": sum(1 for p in scored if p == 0.0),
        "error_ids": len(rows) - len(scored),
    }


def refresh(rollouts: pa.Table, output: Path, provenance: dict[str, Any], *, stage: str, backend: str) -> dict[str, Any]:
    """pass_rates.parquet from rollout rows; returns the summary (with the file's path)."""
    rates = pass_rates(rollouts, provenance, stage=stage, backend=backend)
    path = write_pass_rates(rates, output)
    return {"file": str(path), **summarize(rollouts, rates)}


def verl_pass_rates(rollouts_dir: str, output: str, *, data: str = "", run_dir: str = "", model_id: str = "", config_hash: str = "",
                    seed: int | None = None, stage: str = "") -> dict[str, Any]:
    """`gradus data pass-rates`: verl's rollout dump -> pass_rates.parquet, and the run's group signal
    (informative share per step, rl/grpo/group_signal.py) under `signal`.

    Provenance comes from `<run_dir>/verl_run.json` (written by `gradus train grpo --backend verl`;
    run_dir defaults to the dump's parent folder), flags override it. `data` (the verl parquet trained
    on) is optional: every dumped id must then be one of its `extra_info.id`s."""
    from engine import __version__

    folder = Path(rollouts_dir)
    run = Path(run_dir) if run_dir else folder.parent
    record = json.loads((run / "verl_run.json").read_text()) if (run / "verl_run.json").is_file() else {}
    provenance = {"model_id": model_id or record.get("model_id"), "config_hash": config_hash or record.get("config_hash"),
                  "seed": seed if seed is not None else record.get("seed"), "gradus_version": record.get("gradus_version") or __version__}
    if not provenance["model_id"]:
        raise ConfigError(f"pass-rates: no model id: pass --model-id (no verl_run.json in {run})")
    rollouts = read_verl_dump(folder)
    if data:
        known = {(info or {}).get("id") for info in pq.read_table(data, columns=["extra_info"]).column("extra_info").to_pylist()}
        stray = sorted(set(rollouts.column("id").to_pylist()) - known, key=str)
        if stray:
            raise ConfigError(f"pass-rates: {len(stray)} dumped ids are not in {data} (e.g. {stray[:3]}): wrong data file?")
    from rl.grpo.group_signal import rollout_signal

    result = refresh(rollouts, Path(output), provenance, stage=stage or run.name, backend="verl")
    return {**result, "signal": rollout_signal(rollouts.to_pylist())}  # verl logs no informative share: from the dump
