"""MoDoMoDo domain mixtures as index plans, and the easy -> hard curriculum order.

A plan says which row of which domain goes at each position. It is computed from domain sizes
and weights alone (no data), so every strategy can be checked by hand and the same plan applies
to any table (pipelines/shaping/mix.py does the reading and writing).

Strategies (docs/methods.md#modomodo; the stopping rules are those of Hugging Face
`interleave_datasets` behind MoDoMoDo's LLaMA-Factory `mix_strategy`):
- concat: every active domain whole, one after another, in the given order.
- interleave_under: each step picks domain i with probability w_i and takes its next unseen row;
  stops right after the first domain runs out (its last row is included).
- interleave_over: as under, but an exhausted domain restarts (reshuffled) and the mix stops once
  every domain has been seen in full at least once.
- interleave_once: as under, but an exhausted domain leaves the draw (the other weights are
  renormalised) and the mix stops when all rows are used: each row at most once.
Zero-weight domains are dropped first. A budget (rows) cuts any strategy short; with a budget
interleave_over keeps restarting until the budget is filled, so training length does not
depend on the weights.
"""
from __future__ import annotations

import bisect
import math
import zlib
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from engine.config import ConfigError

STRATEGIES = ("concat", "interleave_under", "interleave_over", "interleave_once")
Strategy = Literal["concat", "interleave_under", "interleave_over", "interleave_once"]


class MixtureError(ConfigError):
    """Weights, sizes or budget that cannot make the requested mixture (a ConfigError: the CLI prints it)."""


@dataclass
class MixPlan:
    domains: list[str]  # active domains (positive weight), in the given order
    domain_index: np.ndarray  # position -> index into `domains`
    row_index: np.ndarray  # position -> row within that domain
    counts: dict[str, int]  # rows drawn per domain (repeats included)
    unique_counts: dict[str, int]  # distinct rows used per domain
    passes: dict[str, int]  # times each domain ran out (interleave_over: restarts)
    dropped: list[str]  # zero-weight domains
    probabilities: dict[str, float]  # normalised weights of the active domains
    stop_reason: str  # budget | first_exhausted | all_seen | all_used
    budget: int = 0

    def __len__(self) -> int:
        return int(len(self.row_index))

    @property
    def shortfall(self) -> int:
        """Rows the budget asked for that the strategy could not give (0 without a budget)."""
        return max(0, self.budget - len(self)) if self.budget else 0


def normalise_weights(weights: Mapping[str, float]) -> tuple[dict[str, float], list[str]]:
    """Positive weights scaled to sum 1, and the zero-weight names (dropped before interleaving)."""
    for name, w in weights.items():
        if not isinstance(w, (int, float)) or isinstance(w, bool) or not math.isfinite(w) or w < 0:
            raise MixtureError(f"weight of domain {name!r} must be a finite number >= 0, got {w!r}")
    active = {k: float(v) for k, v in weights.items() if v > 0}
    if not active:
        raise MixtureError(f"every weight is zero; give at least one domain a positive weight: {dict(weights)}")
    total = sum(active.values())
    return {k: v / total for k, v in active.items()}, [k for k, v in weights.items() if v == 0]


def _row_rng(seed: int, name: str) -> np.random.Generator:
    # keyed by the domain's name: adding or reweighting another domain leaves this one's order alone
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def plan_mixture(
    sizes: Mapping[str, int],
    weights: Mapping[str, float],
    strategy: str,
    *,
    budget: int = 0,
    seed: int = 0,
    shuffle: bool = True,
    max_rows: int = 10_000_000,
) -> MixPlan:
    """The mixture as (domain, row) positions; `budget` 0 = the strategy's own stopping rule.

    `shuffle` draws each domain's rows in a seeded random order (False: storage order).
    `max_rows` refuses an unbudgeted interleave_over whose expected length exceeds it.
    """
    if strategy not in STRATEGIES:
        raise MixtureError(f"unknown strategy {strategy!r}; one of {STRATEGIES}")
    if budget < 0:
        raise MixtureError(f"budget must be >= 0, got {budget}")
    unknown = sorted(set(weights) - set(sizes))
    if unknown:
        raise MixtureError(f"weights name unknown domain(s) {unknown}; domains: {sorted(sizes)}")
    probs, dropped = normalise_weights(weights)
    names = list(probs)
    n_rows = [int(sizes[d]) for d in names]
    empty = [d for d, n in zip(names, n_rows) if n <= 0]
    if empty:
        raise MixtureError(f"domain(s) {empty} have a positive weight but no rows")
    p = [probs[d] for d in names]
    if strategy == "interleave_over" and not budget:
        # the slowest domain needs about n_i / p_i draws to be seen once
        expected = max(n / q for n, q in zip(n_rows, p))
        if expected > max_rows:
            raise MixtureError(f"interleave_over without a budget would draw about {expected:.0f} rows (> max_rows {max_rows}); "
                               "set a step or sample budget")

    rngs = [_row_rng(seed, d) for d in names]
    orders = [r.permutation(n) if shuffle else np.arange(n) for r, n in zip(rngs, n_rows)]
    if strategy == "concat":
        dom = np.concatenate([np.full(n, i) for i, n in enumerate(n_rows)])
        rows = np.concatenate(orders)
        stop = "all_used"
        if budget and budget < len(rows):
            dom, rows, stop = dom[:budget], rows[:budget], "budget"
        passes = [int(np.count_nonzero(dom == i) == n) for i, n in enumerate(n_rows)]
        return _finish(names, dom, rows, passes, dropped, probs, stop, budget)

    dom_out: list[int] = []
    row_out: list[int] = []
    cursor = [0] * len(names)
    passes = [0] * len(names)
    live = list(range(len(names)))  # domains still in the draw (interleave_once removes exhausted ones)
    cum = np.cumsum([p[i] for i in live]).tolist()
    draws = np.random.default_rng([seed, zlib.crc32(b"domain-draws")])
    stop = ""
    while not stop:
        if budget and len(row_out) >= budget:
            stop = "budget"
            break
        for u in draws.random(1024).tolist():  # uniforms in chunks; the domain is found on the live cumulative weights
            if budget and len(row_out) >= budget:
                break
            if strategy == "interleave_under" and any(passes):
                stop = "first_exhausted"
                break
            if strategy == "interleave_over" and not budget and all(passes):
                stop = "all_seen"
                break
            if not live:
                stop = "all_used"
                break
            k = min(bisect.bisect_right(cum, u * cum[-1]), len(live) - 1)
            d = live[k]
            dom_out.append(d)
            row_out.append(int(orders[d][cursor[d]]))
            cursor[d] += 1
            if cursor[d] == n_rows[d]:
                passes[d] += 1
                cursor[d] = 0
                if strategy == "interleave_over":
                    orders[d] = rngs[d].permutation(n_rows[d]) if shuffle else orders[d]
                elif strategy == "interleave_once":
                    live.remove(d)
                    cum = np.cumsum([p[i] for i in live]).tolist()
    return _finish(names, np.asarray(dom_out, dtype=np.int64), np.asarray(row_out, dtype=np.int64), passes, dropped, probs, stop, budget)


def _finish(names, dom, rows, passes, dropped, probs, stop, budget) -> MixPlan:
    counts = {d: int(np.count_nonzero(dom == i)) for i, d in enumerate(names)}
    unique = {d: int(np.unique(rows[dom == i]).size) for i, d in enumerate(names)}
    return MixPlan(names, dom, rows, counts, unique, dict(zip(names, (int(x) for x in passes))), dropped, dict(probs), stop, budget)


def curriculum_order(
    values: Sequence[Any],
    *,
    harder: Literal["higher", "lower"] = "higher",
    levels: Sequence[str] = (),
    missing: Literal["first", "last", "error"] = "last",
) -> list[int]:
    """Positions sorted easy -> hard; equal difficulty keeps the incoming order (a stable sort).

    Numeric values: `harder` says which end is hard. `levels`: categorical labels listed easy ->
    hard (e.g. PISM buckets). Missing values (None/NaN) go first or last, or are an error
    (PISM's lambda* is null when a sample never failed: the easiest, so `first` there).
    """
    rank_of = {label: i for i, label in enumerate(levels)}
    keys: list[tuple[int, float]] = []
    for pos, v in enumerate(values):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            if missing == "error":
                raise MixtureError(f"curriculum: row {pos} has no difficulty value (set curriculum.missing to first or last)")
            keys.append((0 if missing == "first" else 2, 0.0))
            continue
        if levels:
            if str(v) not in rank_of:
                raise MixtureError(f"curriculum: value {v!r} at row {pos} is not one of levels {list(levels)}")
            keys.append((1, float(rank_of[str(v)])))
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise MixtureError(f"curriculum: value {v!r} at row {pos} is not numeric; list its labels easy -> hard in curriculum.levels")
        keys.append((1, float(v) if harder == "higher" else -float(v)))
    return sorted(range(len(keys)), key=keys.__getitem__)
