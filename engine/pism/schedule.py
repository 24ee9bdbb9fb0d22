"""Which mask draws a sample still needs, and what its outcomes mean (lambda*, unsolved, bucket).

Exact schedules stop a ratio as soon as its pass/fail is decided either way: enough successes to
pass (Pc >= tau), or too few draws left to reach them. That is exact for any K and tau; with
K = 10, tau = 0.1 it is the seed code's exit at the first success.
- reference: every ratio, as the seed code ran them.
- adaptive: also stops at the first failing ratio (lambda* is a minimum, later ratios cannot change it).
Both therefore give the lambda*, unsolved flag and bucket of running all K draws at every ratio.
- approx: stops a ratio earlier still, once the outcome all K draws would give is predicted with
  error below `approx.delta` (`predicted_pass`), and with `approx.search: bisect` visits ratio 0
  and then halves the remaining ratios instead of walking them.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from engine.pism.config import PismConfig, bucket_of


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def predicted_pass(successes: int, runs: int, draws: int, needed: int, alpha: float, beta: float) -> float:
    """P(a ratio reaches `needed` successes in all `draws` draws | `successes` in the first `runs`).

    The ratio's success rate has a Beta(alpha, beta) prior, so the draws left succeed
    beta-binomially: P(X = x) = C(m, x) B(a + x, b + m - x) / B(a, b) with the posterior a, b.
    """
    if successes >= needed:
        return 1.0
    left, short = draws - runs, needed - successes
    if short > left:
        return 0.0
    a, b = alpha + successes, beta + runs - successes
    base = _log_beta(a, b)
    miss = sum(math.exp(math.lgamma(left + 1) - math.lgamma(x + 1) - math.lgamma(left - x + 1)
                        + _log_beta(a + x, b + left - x) - base) for x in range(short))
    return max(0.0, 1.0 - miss)


def fit_prior(ratios_run: list[tuple[int, int]], grid: int = 60) -> tuple[float, float]:
    """Beta(alpha, beta) maximising the likelihood of exact-schedule outcomes, for `pism.approx.prior_*`.

    `ratios_run`: (draws run, successes) for each ratio an exact run decided. Whether the run
    stopped at a success or ran out of draws, the likelihood in the rate p is p^s (1-p)^(n-s) up to
    a factor free of the prior, so the stopping rule drops out and the Beta marginal is
    B(alpha + s, beta + n - s) / B(alpha, beta). Searched on a log grid from 0.01 to 10.
    """
    counts = Counter(ratios_run)
    values = [10 ** (-2 + 3 * i / (grid - 1)) for i in range(grid)]

    def loglik(a: float, b: float) -> float:
        base = _log_beta(a, b)
        return sum(c * (_log_beta(a + s, b + n - s) - base) for (n, s), c in counts.items())

    return max(((a, b) for a in values for b in values), key=lambda ab: loglik(*ab))


@dataclass
class SampleSchedule:
    cfg: PismConfig
    successes: list[int] = field(init=False)
    runs: list[int] = field(init=False)
    decided: list[bool | None] = field(init=False)  # per ratio: passed, failed, or not decided (not run, or still running)
    ratio_index: int = field(init=False, default=0)
    done: bool = field(init=False, default=False)
    _below: int = field(init=False, default=-1)  # bisect: highest ratio index known to pass (-1: none yet)
    _above: int = field(init=False, default=0)  # bisect: lowest ratio index known to fail (len(ratios): none yet)

    def __post_init__(self) -> None:
        n = len(self.cfg.ratios)
        self.successes = [0] * n
        self.runs = [0] * n
        self.decided = [None] * n
        self._above = n

    # ---- decisions ----
    def _decide(self, i: int) -> bool | None:
        """True / False once ratio i's outcome is settled (exactly, or within delta for approx), else None."""
        cfg, s, n = self.cfg, self.successes[i], self.runs[i]
        need = cfg.successes_needed
        if s >= need:
            return True
        if s + (cfg.draws - n) < need:
            return False
        if cfg.schedule != "approx" or n < cfg.approx.min_draws:
            return None
        p = predicted_pass(s, n, cfg.draws, need, cfg.approx.prior_alpha, cfg.approx.prior_beta)
        if p < cfg.approx.delta:
            return False
        return True if p > 1.0 - cfg.approx.delta else None

    def next_draw(self) -> tuple[int, int] | None:
        """(ratio index, draw index) to run next, or None when the sample is finished."""
        while not self.done:
            i = self.ratio_index
            if self.decided[i] is None:
                return i, self.runs[i]
            self._advance(i)
        return None

    def _advance(self, i: int) -> None:
        """Ratio i is decided: pick the next ratio to run, or finish."""
        if self.cfg.schedule == "approx" and self.cfg.approx.search == "bisect":
            if self.decided[i]:
                self._below = i
            else:
                self._above = i
            if i == 0 and not self.decided[0]:  # unsolved: nothing above ratio 0 matters
                self.done = True
            elif self._above - self._below > 1:
                self.ratio_index = (self._below + self._above + 1) // 2
            else:
                self.done = True
            return
        stop = self.cfg.schedule != "reference" and not self.decided[i]
        if stop or i + 1 >= len(self.cfg.ratios):
            self.done = True
        else:
            self.ratio_index += 1

    def record(self, ratio_index: int, success: bool) -> None:
        self.runs[ratio_index] += 1
        self.successes[ratio_index] += int(success)
        self.decided[ratio_index] = self._decide(ratio_index)

    # ---- results ----
    @property
    def lambda_star(self) -> float | None:
        """min ratio decided to fail (Pc < tau) among ratios run; None when the sample never failed."""
        return next((self.cfg.ratios[i] for i, d in enumerate(self.decided) if d is False), None)

    @property
    def unsolved(self) -> bool:
        return self.decided[0] is False

    @property
    def bucket(self) -> str | None:
        return bucket_of(self.lambda_star, self.unsolved, self.cfg.buckets)

    @property
    def generations(self) -> int:
        return sum(self.runs)


def replay(cfg: PismConfig, outcome: Callable[[int, int], bool]) -> SampleSchedule:
    """The schedule run on known draw outcomes, `outcome(ratio index, draw index)`: a recorded run or a
    simulated table. Draws are seeded, so a recorded exact run replays any schedule on the same draws."""
    sched = SampleSchedule(cfg)
    while (nxt := sched.next_draw()) is not None:
        sched.record(nxt[0], outcome(*nxt))
    return sched
