"""Per arm: the GRPO mechanism, the training reward's rise over noise, the cost, and what it bought.

What `summary.json` carries under `arms.<label>` (besides the comparison row's accuracy, paired
differences and SEs, pipelines/demo/compare.py):
- informative_share (+ _first / _last, adv_abs_mean, zero_signal_share): the GRPO stage's group
  signal (rl/grpo/group_signal.py), mean over its steps, then over seeds;
- train_reward_first / _last, train_reward_margin_sd: the GRPO stage's last-window minus
  first-window training reward over the sd of a difference of two noise windows sampled from the
  stage's starting model (rl/grpo/reward_noise.py, as benchmarks/grpo_tiny.py measures it), mean over seeds;
- generations.scoring: generations the arm's selection needed: the whole pool's PISM + CMAB
  scoring when any of its sets depends on a difficulty score (kind buckets / range / unsolved,
  directly or through `pool` / `exclude`) or when its GRPO stage samples online (the sampler's
  prior reads the scores), else 0 (fullset; a random set drawn only by size);
- generations.training: rollouts of its GRPO stage, from the run's own per-step counters (first
  seed's run, the one vs_base compares); generations.total = scoring + training;
- acc_gain_per_1k_generations: vs_base per 1 000 generations of generations.total.
Top level: `detectable_effect` = 2 x the largest paired SE of an arm-vs-random difference (seed 0,
over the held-out items): by the 2-SE rule the smallest difference from the random control this
design can tell from zero; `best_arm_vs_base_in_se` = the most accurate arm's vs_base / vs_base_se.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

SCORED_KINDS = ("buckets", "range", "unsolved")  # selection kinds whose membership reads a difficulty score
COMPARED = ("paradigm", "train_sets", "acc", "se_items", "sd_seeds", "vs_base", "vs_base_se", "vs_random", "vs_random_se")


def grpo_stage(run: Mapping[str, Any]) -> dict | None:
    """The GRPO stage of a training run record (pipelines/demo/run.py `_train_record`); None if it has none."""
    stages = [s for s in run.get("stages", []) if s.get("kind") == "grpo"]
    return stages[-1] if stages else None


def metric_rows(run: Mapping[str, Any]) -> list[dict]:
    """The GRPO stage's metrics.jsonl rows ([] for a stage that writes none, e.g. verl)."""
    stage = grpo_stage(run)
    path = Path(stage["metrics"]) if stage and stage.get("metrics") else None
    if path is None or not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_signal(run: Mapping[str, Any]) -> dict[str, Any]:
    from rl.grpo.group_signal import reward_window, summarize_signal

    rows = metric_rows(run)
    return summarize_signal(rows, reward_window(len(rows)))


def uses_scores(name: str, specs: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether selection `name`'s members depend on a difficulty score (module docstring)."""
    spec = specs[name]
    if spec.get("kind") in SCORED_KINDS:
        return True
    return any(uses_scores(other, specs) for other in [spec.get("pool") or None, *spec.get("exclude", [])] if other)


def scoring_generations(sets: Mapping[str, Mapping[str, Any]], specs: Mapping[str, Mapping[str, Any]],
                        pism: Mapping[str, Any], cmab: Mapping[str, Any], online: bool = False) -> dict[str, Any]:
    """Generations of scoring an arm needed: the pool's PISM + CMAB generations, or none (module docstring)."""
    needed = online or any(uses_scores(s["selection"], specs) for s in sets.values())
    by = {"pism": int(pism.get("generations") or 0), "cmab": int(cmab.get("generations") or 0)} if needed else {"pism": 0, "cmab": 0}
    return {"scoring": sum(by.values()), "scoring_by": by}


def _mean(values: Sequence[float | None], digits: int = 4) -> float | None:
    vals = [v for v in values if v is not None]
    return round(sum(vals) / len(vals), digits) if vals else None


def arm_record(row: Mapping[str, Any], runs: Sequence[Mapping[str, Any]], noise: Sequence[Mapping[str, Any] | None],
               scoring: Mapping[str, Any]) -> dict[str, Any]:
    """One arm's entry (module docstring). `runs` / `noise`: its training runs and their noise records, first seed first."""
    signals = [run_signal(r) for r in runs]
    stages = [grpo_stage(r) or {} for r in runs]
    first = signals[0] if signals else {}
    training = first.get("rollouts")
    total = scoring["scoring"] + training if training is not None else None
    vs_base = row.get("vs_base")
    share = lambda key, part: _mean([(s.get(key) or {}).get(part) for s in signals])  # noqa: E731
    return {
        **{k: row.get(k) for k in COMPARED},
        "informative_share": share("informative_share", "mean"),
        "informative_share_first": share("informative_share", "first"),
        "informative_share_last": share("informative_share", "last"),
        "adv_abs_mean": share("adv_abs_mean", "mean"),
        "zero_signal_share": _mean([s.get("zero_signal_share") for s in signals]),
        "train_reward_first": _mean([s.get("reward_first") for s in stages]),
        "train_reward_last": _mean([s.get("reward_last") for s in stages]),
        "train_reward_margin_sd": _mean([(n or {}).get("margin_in_diff_sd") for n in noise], 2),
        "train_reward_margin_sd_per_seed": [(n or {}).get("margin_in_diff_sd") for n in noise],
        "generations": {**scoring, "training": training, "zero_signal": first.get("zero_signal_rollouts"), "total": total,
                        "noise_measurement": sum(int((n or {}).get("noise", {}).get("generations") or 0) for n in noise)},
        "acc_gain_per_1k_generations": round(1000 * vs_base / total, 5) if vs_base is not None and total else None,
    }


def detectable_effect(arms: Mapping[str, Mapping[str, Any]]) -> float | None:
    ses = [a["vs_random_se"] for a in arms.values() if a.get("vs_random_se")]
    return round(2 * max(ses), 4) if ses else None


def best_arm_vs_base_in_se(arms: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    scored = {label: a for label, a in arms.items() if a.get("acc") is not None}
    if not scored:
        return {"best_arm": None, "best_arm_vs_base_in_se": None}
    label, best = max(scored.items(), key=lambda kv: kv[1]["acc"])
    se = best.get("vs_base_se")
    return {"best_arm": label, "best_arm_vs_base_in_se": round(best["vs_base"] / se, 2) if se else None}


def measure_arms(arm_sets: Mapping[str, Mapping[str, Any]], select_specs: Mapping[str, Mapping[str, Any]], rows: Sequence[Mapping[str, Any]],
                 train: Mapping[str, Mapping[str, Any]], noise: Mapping[str, Mapping[str, Any] | None], seeds: Sequence[int],
                 pism: Mapping[str, Any], cmab: Mapping[str, Any], online: Sequence[str] = ()) -> dict[str, Any]:
    """Every trained arm's record + the top-level numbers (module docstring).

    `arm_sets`: label -> the selection job's arm ({role: {selection, count}}); `select_specs`: the
    selection job's resolved selection specs; `rows`: comparison_rows; `train` / `noise`: by run name;
    `online`: labels of the arms whose GRPO samples online."""
    by_data = {r["data"]: r for r in rows}
    arms = {}
    for label, sets in arm_sets.items():
        names = [f"{label}-s{s}" for s in seeds if f"{label}-s{s}" in train]
        if label not in by_data or not names:
            continue
        arms[label] = arm_record(by_data[label], [train[n] for n in names], [noise.get(n) for n in names],
                                 scoring_generations(sets, select_specs, pism, cmab, label in online))
    return {"arms": arms, "detectable_effect": detectable_effect(arms), **best_arm_vs_base_in_se(arms)}


def informative_curves(arm_labels: Sequence[str], train: Mapping[str, Mapping[str, Any]], seeds: Sequence[int]) -> dict[str, list[tuple[int, float]]]:
    """Per arm: (step, informative share) of its GRPO stage, averaged over seeds step by step."""
    curves = {}
    for label in arm_labels:
        by_step: dict[int, list[float]] = {}
        for seed in seeds:
            run = train.get(f"{label}-s{seed}")
            for r in metric_rows(run) if run else []:
                if isinstance(r.get("informative_share"), (int, float)):
                    by_step.setdefault(int(r["step"]), []).append(float(r["informative_share"]))
        if by_step:
            curves[label] = [(step, sum(v) / len(v)) for step, v in sorted(by_step.items())]
    return curves
