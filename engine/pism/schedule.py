"""Which mask draws a sample still needs, and what its outcomes mean (lambda*, unsolved, bucket).

Exact schedules stop a ratio as soon as its pass/fail is decided either way: enough successes to
pass (Pc >= tau), or too few draws left to reach them. That is exact for any K and tau; with
K = 10, tau = 0.1 it is the seed code's exit at the first success.
- reference: every ratio, as the seed code ran them.
- adaptive: also stops at the first failing ratio (lambda* is a minimum, later ratios cannot change it).
Both therefore give the lambda*, unsolved flag and bucket of running all K draws at every ratio.
- approx: walks the ratios as adaptive does, but stops the whole sample once its lambda* is
  predicted within `approx.lambda_tolerance` ratios (and in the right bucket) with error below
  `approx.delta`. The prediction is a posterior over the sample's success-rate curve across all its
  ratios (`approx.curves`, a mixture fitted to exact runs by `fit_curve_prior`): each draw reweights
  the curves, and the draws not yet run are binomial under each curve.
"""
from __future__ import annotations

import math
from dataclasses import astuple, dataclass, field
from functools import lru_cache
from typing import Callable

import numpy as np

from engine.pism.config import BucketConfig, PismConfig, bucket_of


# The grid fit_curve_prior searches: a curve is floor + (height - floor) / (1 + exp((ratio - midpoint) / width)).
FIT_HEIGHTS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.97)
FIT_FLOORS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3)
FIT_MIDPOINTS = tuple(round(-0.05 + 0.1 * i, 2) for i in range(12))
FIT_WIDTHS = (0.02, 0.05, 0.1, 0.2)
_RATE_CLIP = 1e-4  # rates are kept in [clip, 1 - clip] so that no draw is impossible under any curve


def curve_rates(curves: list[list[float]], ratios: list[float]) -> np.ndarray:
    """(curves, ratios) success rates of `[height, floor, midpoint, width, ...]` curves at each ratio."""
    c = np.asarray([x[:4] for x in curves], dtype=float)
    h, f, t, w = c[:, :1], c[:, 1:2], c[:, 2:3], c[:, 3:4]
    rates = f + (h - f) / (1.0 + np.exp((np.asarray(ratios, dtype=float)[None, :] - t) / w))
    return np.clip(rates, _RATE_CLIP, 1.0 - _RATE_CLIP)


def fail_probability(rates: np.ndarray, runs, successes, draws: int, needed: int) -> np.ndarray:
    """(curves, ratios) P(a ratio's K draws end below `needed` successes | its curve, the draws it ran).
    The draws left are binomial under each curve's rate; decided ratios are 0 (passed) or 1 (failed)."""
    out = np.empty_like(rates)
    for i in range(rates.shape[1]):
        left, short = draws - runs[i], needed - successes[i]
        if short <= 0:
            out[:, i] = 0.0
        elif short > left:
            out[:, i] = 1.0
        else:
            p = rates[:, i]
            out[:, i] = sum(math.comb(left, x) * p ** x * (1.0 - p) ** (left - x) for x in range(short))
    return out


def lambda_distribution(weights: np.ndarray, fail: np.ndarray) -> np.ndarray:
    """(ratios + 1,) P(lambda* index = j): the first ratio whose K draws fail; the last entry is "never fails"."""
    survive = np.cumprod(np.hstack([np.ones((fail.shape[0], 1)), 1.0 - fail]), axis=1)
    return weights @ np.hstack([survive[:, :-1] * fail, survive[:, -1:]])


def fit_curve_prior(counts: list[tuple[list[int], list[int]]], ratios: list[float], iterations: int = 300,
                    min_weight: float = 0.005, heights=FIT_HEIGHTS, floors=FIT_FLOORS, midpoints=FIT_MIDPOINTS,
                    widths=FIT_WIDTHS) -> list[list[float]]:
    """`pism.approx.curves` fitted to exact runs: the mixture over a grid of curves maximising the likelihood
    of each sample's (runs, successes) per ratio (EM for the mixture weights; weights below `min_weight`
    dropped). Every draw an exact schedule made is a Bernoulli of its ratio's rate; where it stopped
    depends only on draws already seen, so the stopping rule drops out of the likelihood, and ratios a
    run never reached add nothing."""
    grid = [[h, f, t, w] for h in heights for f in floors if f <= h for t in midpoints for w in widths]
    rates = curve_rates(grid, ratios)
    runs = np.asarray([r for r, _ in counts], dtype=float)
    wins = np.asarray([s for _, s in counts], dtype=float)
    loglik = wins @ np.log(rates).T + (runs - wins) @ np.log1p(-rates).T  # (samples, curves)
    weights = np.full(len(grid), 1.0 / len(grid))
    for _ in range(iterations):
        post = loglik + np.log(weights + 1e-300)
        post = np.exp(post - post.max(axis=1, keepdims=True))
        weights = (post / post.sum(axis=1, keepdims=True)).mean(axis=0)
    keep = weights >= min_weight
    weights = weights[keep] / weights[keep].sum()
    return [[*(round(v, 3) for v in c), round(float(x), 4)] for c, x in zip(np.asarray(grid)[keep].tolist(), weights)]


@lru_cache(maxsize=16)
def _curve_model(curves: tuple, ratios: tuple, buckets: tuple, tolerance: int):
    """(rates, log prior weights, window) for one config. window[j, k] = 1 when reporting lambda* index j is
    right for an exact lambda* index k: same bucket (unsolved counts as one) and at most `tolerance` ratios off."""
    rates = curve_rates([list(c) for c in curves], list(ratios))
    weights = np.asarray([c[4] for c in curves], dtype=float)
    cfg, n = BucketConfig(*buckets), len(ratios)
    label = ["unsolved"] + [bucket_of(ratios[j], False, cfg) for j in range(1, n)] + ["easy"]
    j = np.arange(n + 1)
    window = (np.asarray(label)[:, None] == np.asarray(label)[None, :]) & (np.abs(j[:, None] - j[None, :]) <= tolerance)
    return rates, np.log(weights / weights.sum()), window.astype(float)


@dataclass
class SampleSchedule:
    cfg: PismConfig
    successes: list[int] = field(init=False)
    runs: list[int] = field(init=False)
    decided: list[bool | None] = field(init=False)  # per ratio: passed, failed, or not decided (not run, or still running)
    ratio_index: int = field(init=False, default=0)
    done: bool = field(init=False, default=False)
    predicted: bool = field(init=False, default=False)  # approx: the sample stopped on the posterior, not on exact decisions
    confidence: float = field(init=False, default=1.0)  # approx: P(exact lambda* in the reported one's window | draws) at the stop
    _model: tuple | None = field(init=False, default=None, repr=False)  # approx: (rates, log prior, window)
    _loglik: np.ndarray | None = field(init=False, default=None, repr=False)  # approx: log prior + log likelihood per curve

    def __post_init__(self) -> None:
        n = len(self.cfg.ratios)
        self.successes = [0] * n
        self.runs = [0] * n
        self.decided = [None] * n
        if self.cfg.schedule == "approx":
            a = self.cfg.approx
            self._model = _curve_model(tuple(tuple(c) for c in a.curves), tuple(self.cfg.ratios),
                                       astuple(self.cfg.buckets), a.lambda_tolerance)
            self._loglik = self._model[1].copy()

    # ---- decisions ----
    def _decide(self, i: int) -> bool | None:
        """True / False once ratio i's outcome is settled by its own draws, else None."""
        cfg, s, n = self.cfg, self.successes[i], self.runs[i]
        need = cfg.successes_needed
        if s >= need:
            return True
        if s + (cfg.draws - n) < need:
            return False
        return None

    def next_draw(self) -> tuple[int, int] | None:
        """(ratio index, draw index) to run next, or None when the sample is finished."""
        while not self.done:
            i = self.ratio_index
            if self.decided[i] is not None:
                self._advance(i)
            elif self._model is None or not self._settled_by_posterior():
                return i, self.runs[i]
        return None

    def _advance(self, i: int) -> None:
        """Ratio i is decided: move to the next ratio, or finish (adaptive and approx: at the first failing one)."""
        stop = self.cfg.schedule != "reference" and not self.decided[i]
        if stop or i + 1 >= len(self.cfg.ratios):
            self.done = True
        else:
            self.ratio_index += 1

    def lambda_posterior(self) -> np.ndarray:
        """approx: P(exact lambda* index = j | draws so far) for j = 0 .. len(ratios) (the last: never fails)."""
        rates, _, _ = self._model
        w = np.exp(self._loglik - self._loglik.max())
        fail = fail_probability(rates, self.runs, self.successes, self.cfg.draws, self.cfg.successes_needed)
        return lambda_distribution(w / w.sum(), fail)

    def _settled_by_posterior(self) -> bool:
        """approx: stop once some lambda* index j has P(exact lambda* in j's window) >= 1 - delta, and record
        the likeliest such j (ratios below it passed, j failed); j is never a ratio seen passing."""
        post = self.lambda_posterior()
        cover = self._model[2] @ post
        need = self.cfg.successes_needed
        ok = (cover >= 1.0 - self.cfg.approx.delta) & ~np.asarray([s >= need for s in self.successes] + [False])
        if not ok.any():
            return False
        j = int(np.argmax(np.where(ok, post, -1.0)))
        n = len(self.cfg.ratios)
        self.decided = [True] * min(j, n) + ([False] if j < n else []) + [None] * max(n - j - 1, 0)
        self.done = self.predicted = True
        self.confidence = float(cover[j])
        return True

    def record(self, ratio_index: int, success: bool) -> None:
        self.runs[ratio_index] += 1
        self.successes[ratio_index] += int(success)
        self.decided[ratio_index] = self._decide(ratio_index)
        if self._loglik is not None:
            rates = self._model[0][:, ratio_index]
            self._loglik += np.log(rates) if success else np.log1p(-rates)

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
