"""Composite rewards from config: per-task verifier choice, weights, format gate, V-Triune blend.

- combine "weighted" (MoDoMoDo): score = w_acc * acc + w_iou * iou (box tasks only) + w_format * format;
  with format_gate a failed format zeroes everything (acc and iou are still reported).
- combine "vtriune": score = (acc * alpha + format * beta) / (alpha + beta), acc the verifier's score
  (for detection, its penalised per-box credit), format V-Triune's 4-part 0.25 score.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from engine.config import ConfigError
from engine.verifiers.base import VerifyResult
from engine.verifiers.formats import STAGE_ANSWER_KIND, check_format
from engine.verifiers.registry import BOX_VERIFIERS, VERIFIERS, verify


@dataclass
class RewardWeights:
    acc: float = 2.0  # MoDoMoDo's accuracy weight
    iou: float = 2.0  # MoDoMoDo's IoU weight (box tasks only)
    format: float = 1.0  # MoDoMoDo's format weight


@dataclass
class TaskReward:
    verifier: str | None = None  # overrides the sample's own verifier for this task
    params: dict[str, Any] = field(default_factory=dict)  # merged over the sample's verifier params
    answer_kind: str | None = None  # what <answer> must hold for the format check (any|yesno|choice|number|box)


@dataclass
class RewardConfig:
    combine: Literal["weighted", "vtriune"] = "weighted"  # MoDoMoDo weighted sum, or V-Triune's (acc*alpha + format*beta)/(alpha+beta)
    format: Literal["think_answer", "vtriune", "boxed", "none"] = "think_answer"  # which format check scores the completion
    format_gate: bool = True  # MoDoMoDo: a failed format zeroes the reward
    weights: RewardWeights = field(default_factory=RewardWeights)
    alpha: float = 1.0  # V-Triune accuracy weight
    beta: float = 0.1  # V-Triune format weight
    stage: Literal["judge", "choice", "open"] | None = None  # Curr-ReFT stage: sets the answer kind the format check wants
    tasks: dict[str, TaskReward] = field(default_factory=dict)  # per-task verifier choice and params

    def validate(self) -> None:
        for task, spec in self.tasks.items():
            if spec.verifier is not None and spec.verifier not in VERIFIERS:
                raise ConfigError(f"reward.tasks.{task}.verifier: unknown verifier {spec.verifier!r}; known: {sorted(VERIFIERS)}")
        if self.combine == "vtriune" and self.alpha + self.beta <= 0:
            raise ConfigError("reward: alpha + beta must be > 0")


@dataclass(frozen=True)
class RewardResult:
    score: float
    acc: float  # 1.0 when the verifier's pass rule holds
    format: float  # the format check's score (1.0 when format is "none")
    iou: float | None  # the box verifier's score, None for non-box tasks
    verifier_score: float  # the verifier's own (possibly continuous) score
    pred: str  # the extracted answer, "" when none
    reason: str  # verifier failure reason ("" when judged)
    format_reason: str  # format failure reason ("" when well formed)


def compute_reward(output: str, truth: str, verifier: str, params: dict[str, Any] | None, cfg: RewardConfig, task: str | None = None) -> RewardResult:
    spec = cfg.tasks.get(task or "", TaskReward())
    name = spec.verifier or verifier
    merged = {**(params or {}), **spec.params}
    result: VerifyResult = verify(name, output, truth, merged)
    if cfg.format == "none":
        fmt = VerifyResult.judged(True, "")
    else:
        kind = spec.answer_kind or STAGE_ANSWER_KIND.get(cfg.stage or "open", "any")
        if cfg.stage in (None, "open") and spec.answer_kind is None and name in BOX_VERIFIERS:
            kind = "box"
        fmt = check_format(cfg.format, output, {"answer_kind": kind})
    acc = float(result.passed)
    iou = result.score if name in BOX_VERIFIERS else None
    if cfg.combine == "vtriune":
        score = (result.score * cfg.alpha + fmt.score * cfg.beta) / (cfg.alpha + cfg.beta)
    else:
        w = cfg.weights
        score = w.acc * acc + w.format * fmt.score + (w.iou * iou if iou is not None else 0.0)
        if cfg.format_gate and not fmt.passed:
            score = 0.0
    return RewardResult(score, acc, fmt.score, iou, result.score, result.extracted or "", result.reason, fmt.reason)


