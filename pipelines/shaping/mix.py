"""`gradus mix` and `gradus mix search`: typed configs, reading shards and past runs, writing results.

run_mix: canonical shards -> domains (by a column, or one shard folder per domain) -> a seeded plan
(engine/shaping/mixture.py) -> optional easy -> hard curriculum order -> parquet shards +
_mixture.json (realized counts, weights, strategy, seed, config hash, gradus version).
run_mixture_search: past runs (CSV / JSON / JSONL) -> seed designs still missing, heuristics and
the next round of runs (engine/shaping/mixture_search.py), the Scheffé surrogate's proposal
(engine/shaping/mixture_surrogate.py) -> proposal.json, next_runs.csv, next_runs.json.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from engine import __version__
from engine.config import ConfigError, config_hash, to_dict
from engine.data.sample import SAMPLE_SCHEMA
from engine.data.shards import shard_paths
from engine.shaping.mixture import MixtureError, curriculum_order, plan_mixture
from engine.shaping.mixture_search import NextRunsConfig, heuristic_proposals, missing_seed_designs, propose_next_runs
from engine.shaping.mixture_surrogate import (
    RunRecord,
    RunsError,
    SurrogateConfig,
    fit_surrogate,
    propose_mixture,
    validate_runs,
)

MIX_JSON = "_mixture.json"  # leading underscore: pyarrow / pandas dataset readers of the folder skip it
PROPOSAL_JSON = "proposal.json"
NEXT_RUNS_CSV = "next_runs.csv"  # the proposed runs with an empty score column: fill it, append the rows to the runs file
NEXT_RUNS_JSON = "next_runs.json"


# ----- configs -----

@dataclass
class MixBudget:
    steps: int = 0  # training steps; rows = steps * batch_size (the preferred budget: length does not depend on weights)
    batch_size: int = 0  # rows per step (verl data.train_batch_size)
    samples: int = 0  # or a row budget directly; all 0 = each strategy's own stopping rule
    require_full: bool = True  # a strategy that stops short of the budget (under, once, concat) is an error
    max_rows: int = 10_000_000  # an unbudgeted interleave_over expected to draw more rows than this is refused

    def rows(self) -> int:
        return self.steps * self.batch_size if self.steps else self.samples

    def validate(self) -> None:
        if min(self.steps, self.batch_size, self.samples) < 0 or self.max_rows <= 0:
            raise ConfigError(f"budget: steps, batch_size, samples must be >= 0 and max_rows > 0, got {self}")
        if bool(self.steps) != bool(self.batch_size):
            raise ConfigError(f"budget: steps and batch_size go together (rows = steps * batch_size), got steps={self.steps} batch_size={self.batch_size}")
        if self.steps and self.samples:
            raise ConfigError("budget: give steps (with batch_size) or samples, not both")


@dataclass
class MixOrderConfig:
    """The optional easy -> hard order of the mixed rows (YAML section `curriculum` of a mix config)."""

    column: str = ""  # "" = no curriculum; a column of the shards, `meta.<key>` (e.g. meta.level), or a column of `scores`
    scores: str = ""  # optional parquet with `id` + `column` (e.g. a PISM/CMAB scores.parquet), joined by id
    harder: Literal["higher", "lower"] = "higher"  # which end of a numeric column is hard (PISM lambda_star: lower)
    levels: list[str] = field(default_factory=list)  # categorical columns: labels easy -> hard, e.g. [easy, mid, hard]
    missing: Literal["first", "last", "error"] = "last"  # rows without a value (PISM lambda_star null = never failed: first)


@dataclass
class MixJobConfig:
    input: str = ""  # canonical shards holding every domain; domains are the values of `group_by`
    inputs: dict[str, str] = field(default_factory=dict)  # or: domain name -> its own shard folder (then group_by is unused)
    group_by: str = "domain"  # the column naming a row's domain (the synthetic corpus has one domain: use task)
    split: str = "train"  # keep only rows of this split ("" = all)
    weights: dict[str, float] = field(default_factory=dict)  # every domain needs a weight; 0 drops it
    strategy: Literal["concat", "interleave_under", "interleave_over", "interleave_once"] = "interleave_under"  # MoDoMoDo default: under
    shuffle: bool = True  # draw each domain's rows in a seeded random order (False: storage order)
    seed: int = 0  # row orders and domain draws; the same seed gives the same mixture
    budget: MixBudget = field(default_factory=MixBudget)
    curriculum: MixOrderConfig = field(default_factory=MixOrderConfig)
    output: str = ""  # directory: part-*.parquet + _mixture.json
    rows_per_shard: int = 512  # rows per written parquet file
    overwrite: bool = False  # replace an earlier mixture in `output` (only its part-*.parquet and _mixture.json)

    def validate(self) -> None:
        if self.rows_per_shard <= 0:
            raise ConfigError(f"rows_per_shard must be > 0, got {self.rows_per_shard}")

    def require_paths(self) -> None:
        if bool(self.input) == bool(self.inputs):
            raise ConfigError("mix: give input (one shard folder, domains by group_by) or inputs (domain -> shard folder), exactly one")
        if not self.output:
            raise ConfigError("mix: output is required (e.g. output=outputs/mix)")
        if not self.weights:
            raise ConfigError("mix: weights are required, e.g. weights={counting: 0.5, ocr: 0.5}")


@dataclass
class MixSearchConfig:
    runs: str = ""  # past runs: .csv (one column per domain + score), .json (list, or {"runs": [...]}) or .jsonl of records
    score_key: str = "score"  # CSV column, or dotted path in a JSON record (e.g. eval.overall_acc, summary.accuracy)
    score_reduce: Literal["none", "mean"] = "none"  # mean: the score is the mean of the numbers under score_key (e.g. eval.per_family)
    weights_key: str = "weights"  # JSON records: the key holding {domain: weight} (gradus mix's _mixture.json has it)
    name_key: str = "name"  # optional run name (CSV column or JSON key)
    domains: list[str] = field(default_factory=list)  # expected domains, in this order ([] = as the runs name them)
    sum_tolerance: float = 1e-3  # a run's weights must sum to 1 within this
    design_tolerance: float = 1e-3  # a run counts as a seed design when every weight is this close to it
    alphas: list[float] = field(default_factory=lambda: [0.25, 0.5, 0.75, 1.0])  # alpha blends reported
    surrogate: SurrogateConfig = field(default_factory=SurrogateConfig)
    next_runs: NextRunsConfig = field(default_factory=NextRunsConfig)  # the next round of runs to launch (sequential design)
    output: str = ""  # directory for proposal.json, next_runs.csv and next_runs.json ("" = only print them)

    def validate(self) -> None:
        if self.sum_tolerance < 0 or self.design_tolerance < 0:
            raise ConfigError("sum_tolerance and design_tolerance must be >= 0")
        bad = [a for a in self.alphas if not 0 <= a <= 1]
        if bad:
            raise ConfigError(f"alphas must lie in [0, 1], got {bad}")
        if self.next_runs.criterion == "bootstrap_argmax" and self.surrogate.bootstrap == 0:
            raise ConfigError("next_runs.criterion=bootstrap_argmax needs surrogate.bootstrap > 0")

    def require_paths(self) -> None:
        if not self.runs:
            raise ConfigError("mix search: runs is required (a CSV/JSON/JSONL of past runs, e.g. runs=outputs/runs.csv)")


# ----- gradus mix -----

def _read_folder(path: str, split: str) -> pa.Table:
    """Every parquet file under `path` with all its columns (difficulty tags ride along), one split."""
    tables = [pq.read_table(p) for p in shard_paths(path)]
    if not tables:
        raise FileNotFoundError(f"no parquet shards under {path}")
    table = pa.concat_tables(tables, promote_options="default")
    missing = [f.name for f in SAMPLE_SCHEMA if f.name not in table.column_names]
    if missing:
        raise ConfigError(f"{path}: not canonical shards, missing column(s) {missing}")
    if split:
        table = table.filter(pc.equal(table["split"], split))
    return table


def read_domains(cfg: MixJobConfig) -> dict[str, pa.Table]:
    """Domain name -> its rows, in the order of `weights`; every domain in the data needs a weight."""
    if cfg.inputs:
        unknown = sorted(set(cfg.weights) - set(cfg.inputs))
        unweighted = sorted(set(cfg.inputs) - set(cfg.weights))
        if unknown or unweighted:
            raise MixtureError(f"weights and inputs must name the same domains: weights only {unknown}, inputs only {unweighted}")
        return {d: _read_folder(cfg.inputs[d], cfg.split) for d in cfg.weights}
    table = _read_folder(cfg.input, cfg.split)
    if cfg.group_by not in table.column_names:
        raise ConfigError(f"group_by {cfg.group_by!r} is not a column of {cfg.input}; columns: {table.column_names}")
    labels = table[cfg.group_by].to_pylist()
    present = list(dict.fromkeys(str(v) for v in labels))
    unknown = sorted(set(cfg.weights) - set(present))
    unweighted = [d for d in present if d not in cfg.weights]
    if unknown:
        raise MixtureError(f"weights name domain(s) {unknown} with no {cfg.split or 'any'}-split rows in {cfg.input}; "
                           f"{cfg.group_by} values there: {present}")
    if unweighted:
        raise MixtureError(f"{cfg.group_by} value(s) {unweighted} in {cfg.input} have no weight; give each a weight (0 drops it)")
    rows: dict[str, list[int]] = {d: [] for d in cfg.weights}
    for i, v in enumerate(labels):
        rows[str(v)].append(i)
    return {d: table.take(pa.array(rows[d], type=pa.int64())) for d in cfg.weights}


def _difficulty(table: pa.Table, cur: MixOrderConfig) -> tuple[list[Any], pa.Table]:
    """The curriculum column's values for each row, and the table (with a joined scores column added)."""
    if cur.scores:
        scores = pq.read_table(cur.scores)
        if "id" not in scores.column_names or cur.column not in scores.column_names:
            raise ConfigError(f"curriculum.scores {cur.scores} needs columns id and {cur.column!r}; it has {scores.column_names}")
        by_id = dict(zip(scores["id"].to_pylist(), scores[cur.column].to_pylist()))
        values = [by_id.get(i) for i in table["id"].to_pylist()]
        if cur.column in table.column_names:
            raise ConfigError(f"curriculum.column {cur.column!r} is already a column of the shards; drop curriculum.scores or rename")
        return values, table.append_column(cur.column, pa.array(values))
    if cur.column.startswith("meta."):
        key = cur.column[len("meta."):]
        return [json.loads(m or "{}").get(key) for m in table["meta"].to_pylist()], table
    if cur.column not in table.column_names:
        raise ConfigError(f"curriculum.column {cur.column!r} is not a column of the shards ({table.column_names}); "
                          "use meta.<key> for a key of meta, or curriculum.scores to join a scores file")
    return table[cur.column].to_pylist(), table


def _write_shards(table: pa.Table, out: Path, rows_per_shard: int) -> list[Path]:
    """Canonical columns first (cast to SAMPLE_SCHEMA), extra columns after; part-00000.parquet, ... as write_shards names them."""
    canonical = table.select([f.name for f in SAMPLE_SCHEMA]).cast(SAMPLE_SCHEMA)
    extra = [c for c in table.column_names if c not in SAMPLE_SCHEMA.names]
    for name in extra:
        canonical = canonical.append_column(name, table[name])
    paths = []
    for index, start in enumerate(range(0, max(canonical.num_rows, 1), rows_per_shard)):
        path = out / f"part-{index:05d}.parquet"
        pq.write_table(canonical.slice(start, rows_per_shard), path)
        paths.append(path)
    return paths


def _earlier_mixture(cfg: MixJobConfig) -> list[Path]:
    """Files of an earlier mixture in `output` (to replace at write time); anything else there is refused."""
    out = Path(cfg.output)
    if not out.exists():
        return []
    ours = sorted(out.glob("part-*.parquet")) + ([out / MIX_JSON] if (out / MIX_JSON).exists() else [])
    others = [p.name for p in out.iterdir() if p not in ours]
    if others:
        raise ConfigError(f"output {out} holds files that are not a mixture ({others[:5]}); pick an empty folder")
    if ours and not cfg.overwrite:
        raise ConfigError(f"output {out} already holds a mixture; set overwrite=true to replace it")
    return ours


def run_mix(cfg: MixJobConfig) -> dict:
    """Build the mixture; returns (and writes as _mixture.json) its record."""
    cfg.require_paths()
    earlier = _earlier_mixture(cfg)  # refuse a bad output folder before any work
    domains = read_domains(cfg)
    budget = cfg.budget.rows()
    plan = plan_mixture({d: t.num_rows for d, t in domains.items()}, cfg.weights, cfg.strategy, budget=budget,
                        seed=cfg.seed, shuffle=cfg.shuffle, max_rows=cfg.budget.max_rows)
    if plan.shortfall and cfg.budget.require_full:
        raise MixtureError(f"{cfg.strategy} stopped ({plan.stop_reason}) after {len(plan)} of the {budget} budgeted rows; "
                           "use interleave_over, a smaller budget, or budget.require_full=false")
    # one table of the active domains end to end; a plan position (d, r) is row offset[d] + r of it
    tables = [domains[d] for d in plan.domains]
    offsets, total = [], 0
    for t in tables:
        offsets.append(total)
        total += t.num_rows
    stacked = pa.concat_tables(tables, promote_options="default")
    take = [offsets[d] + r for d, r in zip(plan.domain_index.tolist(), plan.row_index.tolist())]
    mixed = stacked.take(pa.array(take, type=pa.int64()))
    curriculum: dict[str, Any] = {}
    if cfg.curriculum.column:
        values, mixed = _difficulty(mixed, cfg.curriculum)
        order = curriculum_order(values, harder=cfg.curriculum.harder, levels=cfg.curriculum.levels, missing=cfg.curriculum.missing)
        mixed = mixed.take(pa.array(order, type=pa.int64()))
        missing = sum(v is None or (isinstance(v, float) and math.isnan(v)) for v in values)
        curriculum = {**to_dict(cfg.curriculum), "rows_without_value": int(missing)}
    for path in earlier:
        path.unlink()
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    shards = _write_shards(mixed, out, cfg.rows_per_shard)
    # what decides the rows and their order; not where they are written or how they are split into files
    identity = {k: v for k, v in to_dict(cfg).items() if k not in ("output", "rows_per_shard", "overwrite")}
    total_rows = len(plan)
    record = {
        "rows": total_rows,
        "strategy": cfg.strategy,
        "seed": cfg.seed,
        "weights": plan.probabilities,  # normalised, zero-weight domains dropped: the form `gradus mix search` reads
        "weights_given": dict(cfg.weights),
        "dropped_zero_weight": plan.dropped,
        "domain_rows": {d: domains[d].num_rows for d in cfg.weights},
        "realized_counts": plan.counts,
        "realized_shares": {d: round(c / total_rows, 6) if total_rows else 0.0 for d, c in plan.counts.items()},
        "unique_rows": plan.unique_counts,
        "passes": plan.passes,
        "stop_reason": plan.stop_reason,
        "budget_rows": budget,
        "shortfall": plan.shortfall,
        "steps": total_rows // cfg.budget.batch_size if cfg.budget.batch_size else None,
        "curriculum": curriculum,
        # an ordered export: a curriculum only holds if the trainer keeps the file order
        "verl": {"data.shuffle": False} if curriculum else {},
        "shards": [str(p) for p in shards],
        "config_hash": config_hash(identity),
        "gradus_version": __version__,
        "config": to_dict(cfg),
    }
    (out / MIX_JSON).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return {k: v for k, v in record.items() if k != "config"}


# ----- gradus mix search -----

def _dig(record: dict, dotted: str, where: str) -> Any:
    node: Any = record
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise RunsError(f"{where}: no {dotted!r} in the record (keys here: {sorted(node) if isinstance(node, dict) else type(node).__name__})")
        node = node[part]
    return node


def _score(value: Any, cfg: MixSearchConfig, where: str) -> float:
    if cfg.score_reduce == "mean":
        numbers = list(value.values()) if isinstance(value, dict) else value
        if not isinstance(numbers, list) or not numbers:
            raise RunsError(f"{where}: score_reduce=mean needs a non-empty mapping or list under {cfg.score_key!r}, got {value!r}")
        value = [_number(v, where) for v in numbers]
        return sum(value) / len(value)
    if isinstance(value, (dict, list)):
        raise RunsError(f"{where}: {cfg.score_key!r} holds a {type(value).__name__}; point score_key at a number or set score_reduce=mean")
    return _number(value, where)


def _number(value: Any, where: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise RunsError(f"{where}: {value!r} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RunsError(f"{where}: {value!r} is not a number")
    return float(value)


def _csv_records(path: Path, cfg: MixSearchConfig) -> list[RunRecord]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        if cfg.score_key not in header:
            raise RunsError(f"{path}: no score column {cfg.score_key!r}; columns: {header}")
        weight_columns = [c for c in header if c not in (cfg.score_key, cfg.name_key)]
        out = []
        for line, row in enumerate(reader, start=2):
            where = f"{path}:{line}"
            if None in row or any(row[c] is None for c in header):
                raise RunsError(f"{where}: {len(header)} columns expected")
            weights = {c: _number(row[c], f"{where} column {c!r}") for c in weight_columns}
            out.append(RunRecord(weights, _score(row[cfg.score_key], cfg, where), row.get(cfg.name_key) or "", where))
    return out


def _json_records(path: Path, cfg: MixSearchConfig) -> list[RunRecord]:
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".jsonl":
            items = [(f"{path}:{i}", json.loads(line)) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]
        else:
            data = json.loads(text)
            data = data.get("runs") if isinstance(data, dict) else data
            if not isinstance(data, list):
                raise RunsError(f"{path}: expected a list of runs or {{\"runs\": [...]}}")
            items = [(f"{path}[{i}]", r) for i, r in enumerate(data)]
    except json.JSONDecodeError as exc:
        raise RunsError(f"{path}: not valid JSON ({exc})") from None
    out = []
    for where, rec in items:
        if not isinstance(rec, dict):
            raise RunsError(f"{where}: a run is a mapping, got {type(rec).__name__}")
        weights = _dig(rec, cfg.weights_key, where)
        if not isinstance(weights, dict):
            raise RunsError(f"{where}: {cfg.weights_key!r} must map domain -> weight, got {weights!r}")
        out.append(RunRecord(dict(weights), _score(_dig(rec, cfg.score_key, where), cfg, where), str(rec.get(cfg.name_key, "")), where))
    return out


def read_runs(cfg: MixSearchConfig) -> list[RunRecord]:
    path = Path(cfg.runs)
    if not path.is_file():
        raise FileNotFoundError(f"no runs file at {path}")
    if path.suffix == ".csv":
        return _csv_records(path, cfg)
    if path.suffix in (".json", ".jsonl"):
        return _json_records(path, cfg)
    raise ConfigError(f"runs file {path}: expected .csv, .json or .jsonl")


def _score_slot(record: dict, dotted: str) -> None:
    """An empty (null) score at the dotted path, for the user to fill in."""
    parts = dotted.split(".")
    for part in parts[:-1]:
        record = record.setdefault(part, {})
    record[parts[-1]] = None


def write_next_runs(cfg: MixSearchConfig, domains: list[str], proposed: list[dict], out: Path) -> list[str]:
    """next_runs.csv (the runs CSV's own columns when the runs file is a CSV, so filled rows can be
    appended to it) and next_runs.json (records in the form the search reads, score null)."""
    runs_path = Path(cfg.runs)
    if runs_path.suffix == ".csv":
        with runs_path.open(newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle), None) or []
    else:
        header = [cfg.name_key, *domains, cfg.score_key]
    with (out / NEXT_RUNS_CSV).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for rec in proposed:
            row = {cfg.name_key: rec["name"], cfg.score_key: "", **rec["weights"]}
            writer.writerow([row.get(c, 0.0) for c in header])
    records = []
    for rec in proposed:
        item = {cfg.name_key: rec["name"], cfg.weights_key: rec["weights"]}
        _score_slot(item, cfg.score_key)
        item.update({k: v for k, v in rec.items() if k not in ("name", "weights")})
        records.append(item)
    (out / NEXT_RUNS_JSON).write_text(json.dumps(records, indent=2) + "\n", encoding="utf-8")
    return [str(out / NEXT_RUNS_CSV), str(out / NEXT_RUNS_JSON)]


def run_mixture_search(cfg: MixSearchConfig) -> dict:
    """Heuristics and the surrogate's proposal from past runs; written to output/proposal.json when output is set."""
    cfg.require_paths()
    runs = validate_runs(read_runs(cfg), cfg.domains, sum_tolerance=cfg.sum_tolerance)
    try:
        fit = fit_surrogate(runs, cfg.surrogate)
        surrogate = propose_mixture(runs, cfg.surrogate, fit)
    except RunsError as exc:
        if not cfg.next_runs.count:
            raise
        fit, surrogate = None, {"skipped": str(exc)}  # too few runs: the next runs complete the design
    design = propose_next_runs(runs, cfg.surrogate, cfg.next_runs, fit, design_tolerance=cfg.design_tolerance) if cfg.next_runs.count else {"runs": []}
    result = {
        "domains": runs.domains,
        "runs": int(len(runs.scores)),
        "missing_seed_designs": missing_seed_designs(runs, cfg.design_tolerance),
        "heuristics": heuristic_proposals(runs, cfg.alphas, cfg.design_tolerance),
        "surrogate": surrogate,
        "next_runs": design.pop("runs"),
        "next_runs_design": design,
        "config_hash": config_hash({k: v for k, v in to_dict(cfg).items() if k != "output"}),
        "runs_sha256": hashlib.sha256(Path(cfg.runs).read_bytes()).hexdigest()[:16],  # the config names the file; this pins its content
        "gradus_version": __version__,
    }
    if cfg.output:
        out = Path(cfg.output)
        out.mkdir(parents=True, exist_ok=True)
        (out / PROPOSAL_JSON).write_text(json.dumps({**result, "config": to_dict(cfg)}, indent=2) + "\n", encoding="utf-8")
        result["written"] = [str(out / PROPOSAL_JSON)]
        if result["next_runs"]:
            result["written"] += write_next_runs(cfg, runs.domains, result["next_runs"], out)
    return result
