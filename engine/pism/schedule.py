"""Which mask draws a sample still needs, and what its outcomes mean (lambda*, unsolved, bucket).

Within a ratio both schedules stop as soon as its pass/fail is decided either way: enough
successes to pass (Pc >= tau), or too few draws left to reach them. That is exact for any K and
tau; with K = 10, tau = 0.1 it is the seed code's exit at the first success.
- reference: every ratio, as the seed code ran them.
- adaptive: also stops at the first failing ratio (lambda* is a minimum, later ratios cannot change it).
Both therefore give the lambda*, unsolved flag and bucket of running all K draws at every ratio.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from engine.pism.config import PismConfig, bucket_of


@dataclass
class SampleSchedule:
    cfg: PismConfig
    successes: list[int] = field(init=False)
    runs: list[int] = field(init=False)
    ratio_index: int = field(init=False, default=0)
    done: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        n = len(self.cfg.ratios)
        self.successes = [0] * n
        self.runs = [0] * n

    # ---- decisions ----
    def _passed(self, i: int) -> bool:
        return self.successes[i] >= self.cfg.successes_needed

    def _failed(self, i: int) -> bool:
        return self.successes[i] + (self.cfg.draws - self.runs[i]) < self.cfg.successes_needed

    def _ratio_finished(self, i: int) -> bool:
        return self._passed(i) or self._failed(i)

    def next_draw(self) -> tuple[int, int] | None:
        """(ratio index, draw index) to run next, or None when the sample is finished."""
        while not self.done:
            i = self.ratio_index
            if not self._ratio_finished(i):
                return i, self.runs[i]
            stop = self.cfg.schedule == "adaptive" and not self._passed(i)
            if stop or i + 1 >= len(self.cfg.ratios):
                self.done = True
            else:
                self.ratio_index += 1
        return None

    def record(self, ratio_index: int, success: bool) -> None:
        self.runs[ratio_index] += 1
        self.successes[ratio_index] += int(success)

    # ---- results ----
    @property
    def lambda_star(self) -> float | None:
        """min ratio with Pc < tau among ratios run; None when the sample never failed."""
        for i, ratio in enumerate(self.cfg.ratios):
            if self.runs[i] and not self._passed(i):
                return ratio
        return None

    @property
    def unsolved(self) -> bool:
        return not self._passed(0)

    @property
    def bucket(self) -> str | None:
        return bucket_of(self.lambda_star, self.unsolved, self.cfg.buckets)

    @property
    def generations(self) -> int:
        return sum(self.runs)
