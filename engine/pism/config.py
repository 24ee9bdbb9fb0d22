"""PISM thresholds and choices (docs/methods.md#pism); every number here is a config value."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from engine.config import ConfigError

PAPER_RATIOS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


@dataclass
class BucketConfig:
    hard_max: float = 0.4  # lambda* at or below this is hard
    easy_min: float = 0.7  # lambda* at or above this (or never failing) is easy
    hard_inclusive: bool = True  # lambda* == hard_max counts as hard (paper)
    easy_inclusive: bool = True  # lambda* == easy_min counts as easy (paper text); false follows its Table A (mid)


# The tiny warm-started model's curve prior: engine.pism.schedule.fit_curve_prior on its reference run
# (benchmarks/pism.py, 120 samples, min_weight 0.005). Each row: height, floor, midpoint, width, weight.
TINY_CURVES = [
    [0.02, 0.0, -0.05, 0.02, 0.1307], [0.02, 0.0, -0.05, 0.05, 0.0063], [0.02, 0.0, 0.25, 0.02, 0.0359],
    [0.05, 0.0, -0.05, 0.02, 0.0166], [0.05, 0.0, 0.25, 0.02, 0.0091], [0.05, 0.0, 0.65, 0.02, 0.1355],
    [0.1, 0.0, 0.85, 0.02, 0.0548], [0.15, 0.0, 0.15, 0.05, 0.0067], [0.15, 0.0, 0.65, 0.02, 0.038],
    [0.15, 0.0, 0.75, 0.02, 0.0096], [0.2, 0.0, 0.15, 0.02, 0.028], [0.2, 0.0, 0.15, 0.05, 0.0099],
    [0.3, 0.0, 0.45, 0.05, 0.0422], [0.3, 0.0, 0.55, 0.05, 0.038], [0.3, 0.02, 0.55, 0.02, 0.0094],
    [0.4, 0.0, -0.05, 0.1, 0.0074], [0.4, 0.0, 0.55, 0.05, 0.1477], [0.4, 0.0, 0.65, 0.02, 0.0347],
    [0.5, 0.0, -0.05, 0.1, 0.065], [0.5, 0.0, 0.35, 0.05, 0.0094], [0.6, 0.0, 0.35, 0.1, 0.0086],
    [0.6, 0.0, 0.65, 0.02, 0.0161], [0.7, 0.0, 0.05, 0.02, 0.0085], [0.7, 0.0, 0.35, 0.1, 0.0222],
    [0.8, 0.0, 0.05, 0.02, 0.0099], [0.8, 0.0, 0.65, 0.05, 0.0058], [0.8, 0.0, 0.75, 0.05, 0.0126],
    [0.8, 0.05, 0.75, 0.02, 0.0107], [0.97, 0.0, 0.45, 0.05, 0.0179], [0.97, 0.0, 0.45, 0.1, 0.0134],
    [0.97, 0.0, 0.65, 0.1, 0.0081], [0.97, 0.1, 0.15, 0.02, 0.0087], [0.97, 0.1, 0.35, 0.02, 0.014],
    [0.97, 0.2, 0.35, 0.02, 0.0085],
]


@dataclass
class ApproxConfig:
    """The `approx` schedule: stop a sample once its lambda* is predicted within lambda_tolerance ratios
    (same bucket) with error below delta, from a posterior over its success-rate curve (docs/pism.md)."""
    delta: float = 0.01  # per-sample error bound: stop once P(exact lambda* outside the reported one's window | draws so far) < delta
    lambda_tolerance: int = 1  # ratios the reported lambda* may be off by (the bucket and unsolved flag may not)
    curves: list[list[float]] = field(default_factory=lambda: [list(c) for c in TINY_CURVES])  # prior over a sample's rate curve: [height, floor, midpoint, width, weight] rows, rate = floor + (height - floor) / (1 + exp((ratio - midpoint) / width)); fit yours with engine.pism.schedule.fit_curve_prior


@dataclass
class PismConfig:
    ratios: list[float] = field(default_factory=lambda: list(PAPER_RATIOS))  # mask ratios, ascending, first 0.0
    draws: int = 10  # K: mask draws per ratio
    tau: float = 0.1  # a ratio fails when Pc < tau
    mask_mode: Literal["rect", "pixel", "patch"] = "rect"  # rect: reference code; pixel: paper text; patch: merged-patch grid of the engine's image processor
    # shared makes Pc a rate over sampling given one mask per ratio: another estimator, compared with independent in docs/pism.md
    mask_draws: Literal["independent", "shared"] = "independent"  # independent: a new mask per draw (paper); shared: one per (sample, ratio), so draws reuse one prefill
    schedule: Literal["reference", "adaptive", "approx"] = "adaptive"  # reference runs every ratio, adaptive stops at lambda* (both exact); approx stops once lambda* is predicted (pism.approx)
    max_in_flight: int = 0  # streaming engines (vLLM): draws in flight at once; 0 = one per sample of the batch (K per sample with speculation)
    # records stay the schedule's (verdicts are consumed in draw order); unneeded draws count as `speculative_generations`
    speculate_after_misses: int = 0  # streaming engines: after this many misses send a ratio's remaining draws at once (0 = off); same records, extra draws
    seed: int = 0  # global seed: masks and sampling seeds derive from (seed, sample id, ratio, draw)
    buckets: BucketConfig = field(default_factory=BucketConfig)
    approx: ApproxConfig = field(default_factory=ApproxConfig)  # used by schedule: approx only

    def validate(self) -> None:
        r = self.ratios
        if not r or r[0] != 0.0 or any(b <= a for a, b in zip(r, r[1:])) or r[-1] >= 1.0:
            raise ConfigError(f"pism.ratios must start at 0.0, ascend strictly and stay below 1.0, got {r}")
        if self.mask_draws not in ("independent", "shared"):
            raise ConfigError(f"pism.mask_draws {self.mask_draws!r} not in ('independent', 'shared')")
        if self.speculate_after_misses < 0:
            raise ConfigError("pism.speculate_after_misses must be >= 0 (0 = off)")
        if self.max_in_flight < 0:
            raise ConfigError("pism.max_in_flight must be >= 0 (0 = one draw per sample of the batch)")
        if self.draws < 1 or not 0.0 < self.tau <= 1.0:
            raise ConfigError("pism: need draws >= 1 and 0 < tau <= 1")
        if self.buckets.hard_max > self.buckets.easy_min:
            raise ConfigError("pism.buckets: hard_max must not exceed easy_min")
        a = self.approx
        if not 0.0 < a.delta < 0.5 or a.lambda_tolerance < 0:
            raise ConfigError("pism.approx: need 0 < delta < 0.5 and lambda_tolerance >= 0")
        if not a.curves or any(len(c) != 5 or not 0.0 <= c[1] <= c[0] <= 1.0 or c[3] <= 0 or c[4] <= 0 for c in a.curves):
            raise ConfigError("pism.approx.curves: need rows [height, floor, midpoint, width, weight] with "
                              "0 <= floor <= height <= 1, width > 0, weight > 0")

    def decisive(self) -> dict:
        """The settings that decide a sample's record, for config hashes and ledger keys: the
        approx schedule's settings only when it runs, never max_in_flight (draws are seeded, so
        the records do not depend on how many are in flight)."""
        from engine.config import to_dict

        out = to_dict(self)
        out.pop("max_in_flight")
        out.pop("speculate_after_misses")  # changes which extra draws run, never a record
        if self.schedule != "approx":
            out.pop("approx")
        return out

    @property
    def successes_needed(self) -> int:
        """A ratio passes when Pc = successes / K >= tau, i.e. successes >= ceil(tau * K) (fails when Pc < tau)."""
        return max(1, math.ceil(self.tau * self.draws - 1e-9))


def bucket_of(lambda_star: float | None, unsolved: bool, cfg: BucketConfig) -> str | None:
    if unsolved:
        return None
    if lambda_star is None:
        return "easy"
    eps = 1e-9
    if lambda_star < cfg.hard_max - eps or (cfg.hard_inclusive and abs(lambda_star - cfg.hard_max) <= eps):
        return "hard"
    if lambda_star > cfg.easy_min + eps or (cfg.easy_inclusive and abs(lambda_star - cfg.easy_min) <= eps):
        return "easy"
    return "mid"
