"""The GRPO mechanism, measured: how much of each step's rollouts can give the policy a gradient.

GRPO's advantage is a response's reward minus its prompt group's mean (over the group's sd): a
group whose rewards are all equal (every response right, or every one wrong) has zero advantage
everywhere and moves nothing, however many rollouts it cost. Per generation round:

- informative_share: share of prompt groups with at least two scored rewards that are not all
  equal (spread above ZERO_SPREAD, the tolerance TRL's own zero-std test uses);
- zero_signal_rollouts: completions in the other groups (rollouts spent for no gradient);
- rollouts / unscored_rollouts: completions generated / with no reward (the reward returned None);
- reward_mean, reward_std: mean and sd (n-1) of the scored rewards over the whole batch;
- reward_std_in_group: mean over groups (>= 2 scored) of the within-group sd, the scale GRPO divides by;
- adv_abs_mean: mean |advantage| over the round's completions (the trainer's advantages, when given).

`round_signal` reads one round in TRL's order (each prompt's `group_size` completions consecutive);
`signal_by_step` reads rollout rows (rl/grpo/rollout_log.py: id, step, score), grouping by
(step, sample id): how a verl run's rollout dump gets the same numbers. `summarize_signal` turns
per-step rows into a run's summary: mean over steps, first / last window, totals of the counts.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

ZERO_SPREAD = 1e-8  # TRL: torch.isclose(std, 0) with its default atol
WINDOWED = ("informative_share", "adv_abs_mean", "reward_std", "reward_std_in_group")
COUNTED = ("rollouts", "zero_signal_rollouts", "unscored_rollouts")


def reward_window(steps: int) -> int:
    """Steps averaged for a run's first / last window (reward_first / reward_last): a fifth of the run, 1..10 steps."""
    return max(1, min(10, steps // 5))


def _scored(values: Iterable[Any]) -> list[float]:
    return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]


def _sd(values: Sequence[float]) -> float | None:
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def informative(group: Sequence[Any]) -> bool:
    """A group gives GRPO a gradient when two of its scored rewards differ."""
    scored = _scored(group)
    return len(scored) >= 2 and max(scored) - min(scored) > ZERO_SPREAD


def group_signal(groups: Sequence[Sequence[Any]], advantages: Sequence[float] | None = None) -> dict[str, Any]:
    """The module docstring's numbers for one round's prompt groups (rewards; None = unscored)."""
    if not groups:
        raise ValueError("group_signal: no prompt groups")
    rewards = [r for g in groups for r in g]
    scored = _scored(rewards)
    useful = [informative(g) for g in groups]
    spreads = [s for s in (_sd(_scored(g)) for g in groups) if s is not None]
    row: dict[str, Any] = {
        "groups": len(groups),
        "rollouts": len(rewards),
        "informative_share": sum(useful) / len(groups),
        "zero_signal_rollouts": sum(len(g) for g, u in zip(groups, useful) if not u),
        "unscored_rollouts": len(rewards) - len(scored),
        "reward_mean": sum(scored) / len(scored) if scored else None,
        "reward_std": _sd(scored),
        "reward_std_in_group": sum(spreads) / len(spreads) if spreads else None,
    }
    if advantages is not None:
        if len(advantages) != len(rewards):
            raise ValueError(f"group_signal: {len(advantages)} advantages for {len(rewards)} rewards")
        row["adv_abs_mean"] = sum(abs(float(a)) for a in advantages) / len(advantages)
    return row


def round_signal(rewards: Sequence[Any], group_size: int, advantages: Sequence[float] | None = None) -> dict[str, Any]:
    """One generation round in TRL's layout: rewards[i * group_size:(i + 1) * group_size] is prompt i's group."""
    if group_size < 1 or len(rewards) % group_size:
        raise ValueError(f"round_signal: {len(rewards)} rewards do not split into groups of {group_size}")
    return group_signal([rewards[i:i + group_size] for i in range(0, len(rewards), group_size)], advantages)


def signal_by_step(rollouts: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rollout rows (step, id, score) -> one group_signal row per step, groups keyed by sample id.

    Rows without an id cannot be grouped; they are counted as `rollouts_without_id`, never dropped silently."""
    steps: dict[int, dict[str, list]] = {}
    loose: dict[int, int] = {}
    for row in rollouts:
        step = int(row["step"])
        if row.get("id") is None:
            loose[step] = loose.get(step, 0) + 1
            continue
        steps.setdefault(step, {}).setdefault(str(row["id"]), []).append(row.get("score"))
    out = []
    for step in sorted(set(steps) | set(loose)):
        groups = list(steps.get(step, {}).values())
        base = group_signal(groups) if groups else {"groups": 0, "rollouts": 0}
        out.append({"step": step, **base, "rollouts_without_id": loose.get(step, 0)})
    return out


def rollout_signal(rollouts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """A run's rollout rows (a verl dump read by rollout_log.read_verl_dump) -> summarize_signal of the
    per-step rows, with the per-step rows themselves (`per_step`). No advantages: verl does not dump them."""
    per_step = signal_by_step(rollouts)
    return {**summarize_signal(per_step, reward_window(len(per_step))), "per_step": per_step}


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def summarize_signal(rows: Sequence[dict[str, Any]], window: int) -> dict[str, Any]:
    """Per-step rows (metrics.jsonl) -> {metric: {mean, first, last}} over the steps that carry it,
    first / last = the first / last `window` of those steps, plus the totals of the counts.

    Rows written before these metrics existed carry none: every value is then None (not measured)."""
    out: dict[str, Any] = {"steps": sum(1 for r in rows if "informative_share" in r), "window": window}
    for key in WINDOWED:
        values = [float(r[key]) for r in rows if isinstance(r.get(key), (int, float))]
        k = min(window, len(values))
        out[key] = {"mean": _mean(values), "first": _mean(values[:k]), "last": _mean(values[-k:] if k else [])}
    for key in COUNTED:
        values = [int(r[key]) for r in rows if isinstance(r.get(key), (int, float))]
        out[key] = sum(values) if values else None
    rollouts, zero = out["rollouts"], out["zero_signal_rollouts"]
    out["zero_signal_share"] = round(zero / rollouts, 4) if rollouts and zero is not None else None
    return out
