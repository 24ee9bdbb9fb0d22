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


@dataclass
class ApproxConfig:
    """The `approx` schedule: stop a ratio once its K-draw outcome is predicted with error below delta."""
    delta: float = 0.1  # stop a ratio once P(all K draws would decide it the other way | draws so far) < delta
    prior_alpha: float = 0.68  # Beta prior on a ratio's success rate; default: fitted to the tiny model (refit yours: engine.pism.schedule.fit_prior)
    prior_beta: float = 1.54  # the prior is worth prior_alpha successes and prior_beta failures
    min_draws: int = 1  # draws a ratio needs before the prediction may decide it
    search: Literal["linear", "bisect"] = "linear"  # bisect: ratio 0, then halve the rest; assumes Pc never rises with the ratio


@dataclass
class PismConfig:
    ratios: list[float] = field(default_factory=lambda: list(PAPER_RATIOS))  # mask ratios, ascending, first 0.0
    draws: int = 10  # K: mask draws per ratio
    tau: float = 0.1  # a ratio fails when Pc < tau
    mask_mode: Literal["rect", "pixel", "patch"] = "rect"  # rect: reference code; pixel: paper text; patch: merged-patch grid of the engine's image processor
    schedule: Literal["reference", "adaptive", "approx"] = "adaptive"  # reference runs every ratio, adaptive stops at lambda* (both exact); approx predicts each ratio from fewer draws (pism.approx)
    max_in_flight: int = 0  # streaming engines (vLLM): draws in flight at once; 0 = one per sample of the batch
    seed: int = 0  # global seed: masks and sampling seeds derive from (seed, sample id, ratio, draw)
    buckets: BucketConfig = field(default_factory=BucketConfig)
    approx: ApproxConfig = field(default_factory=ApproxConfig)  # used by schedule: approx only

    def validate(self) -> None:
        r = self.ratios
        if not r or r[0] != 0.0 or any(b <= a for a, b in zip(r, r[1:])) or r[-1] >= 1.0:
            raise ConfigError(f"pism.ratios must start at 0.0, ascend strictly and stay below 1.0, got {r}")
        if self.max_in_flight < 0:
            raise ConfigError("pism.max_in_flight must be >= 0 (0 = one draw per sample of the batch)")
        if self.draws < 1 or not 0.0 < self.tau <= 1.0:
            raise ConfigError("pism: need draws >= 1 and 0 < tau <= 1")
        if self.buckets.hard_max > self.buckets.easy_min:
            raise ConfigError("pism.buckets: hard_max must not exceed easy_min")
        a = self.approx
        if not 0.0 < a.delta < 0.5 or a.prior_alpha <= 0 or a.prior_beta <= 0 or not 1 <= a.min_draws <= self.draws:
            raise ConfigError("pism.approx: need 0 < delta < 0.5, prior_alpha and prior_beta > 0, 1 <= min_draws <= draws")

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
