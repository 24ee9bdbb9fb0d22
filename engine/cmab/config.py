"""CMAB thresholds and choices (docs/methods.md#cmab); every number here is a config value."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from engine.config import ConfigError


@dataclass
class CmabBuckets:
    """rho-bar bands: easy below easy_low or above easy_high; hard within [hard_low, hard_high]; mid between."""

    easy_low: float = 0.1
    hard_low: float = 0.4
    hard_high: float = 1.6
    easy_high: float = 1.9


@dataclass
class CmabConfig:
    mode: Literal["paper", "code"] = "paper"  # paper: mass ratio, geo-mean over layers; code: the reference script's one layer
    eps: float = 1e-8  # inside log(rho + eps) of the paper's geometric mean
    skip_first_last: bool = True  # paper: layers 2..L-1 (1-based), i.e. the first and last are left out
    code_layer: float = 0.714  # code mode's layer: an index, or a fraction of depth when < 1 (20 of 28 for the 7B)
    chunk_rows: int = 64  # response rows whose softmax is materialized at once (memory: heads x chunk x L floats)
    buckets: CmabBuckets = field(default_factory=CmabBuckets)

    def validate(self) -> None:
        b = self.buckets
        if not 0 <= b.easy_low <= b.hard_low <= b.hard_high <= b.easy_high:
            raise ConfigError(f"cmab.buckets must satisfy 0 <= easy_low <= hard_low <= hard_high <= easy_high, got {b}")
        if self.mode not in ("paper", "code"):
            raise ConfigError(f"cmab.mode {self.mode!r} not in ('paper', 'code')")
        if self.chunk_rows < 1 or self.eps < 0 or self.code_layer < 0:
            raise ConfigError("cmab: need chunk_rows >= 1, eps >= 0, code_layer >= 0")

    def layer_index(self, num_layers: int) -> int:
        """Code mode's layer for a model of `num_layers` decoder layers."""
        idx = round(self.code_layer * num_layers) if self.code_layer < 1 else int(self.code_layer)
        if not 0 <= idx < num_layers:
            raise ConfigError(f"cmab.code_layer {self.code_layer} gives layer {idx}, outside 0..{num_layers - 1}")
        return idx


def bucket_of(rho_bar: float, b: CmabBuckets) -> str:
    if rho_bar < b.easy_low or rho_bar > b.easy_high:
        return "easy"
    if b.hard_low <= rho_bar <= b.hard_high:
        return "hard"
    return "mid"
