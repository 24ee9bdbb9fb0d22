"""The main job's per-arm mechanism and cost accounting on hand-made run records and reward tables.

Unit-scoped: the metrics.jsonl rows, eval rows and scoring summaries below are fixed tables written
for the test, no model runs. The real runs that produce them: tests/cpu/demo/test_demo_on_cpu.py.
"""
import json
from pathlib import Path

import pandas as pd
import pytest

from pipelines.demo.compare import comparison_rows
from pipelines.demo.measures import informative_curves, measure_arms, scoring_generations, uses_scores
from engine.shaping.select import expand
from engine.config import to_dict

PISM = {"generations": 1200}
CMAB = {"generations": 34}


def _specs() -> dict:
    """The demo's selections (configs/select/demo.yaml: preset grpo_only + mid / hard buckets), as selection.json records them."""
    from engine.shaping.select import ArmSpec, SelectionSpec

    selections, arms = expand("grpo_only", {"mid": SelectionSpec("buckets", buckets=["mid"]), "hard": SelectionSpec("buckets", buckets=["hard"]),
                                            "rand_excl_hard": SelectionSpec("random", size=4, exclude=["hard"]),
                                            "rand_of_mid": SelectionSpec("random", size=4, pool="mid")},
                              {"sft_mid_grpo_hard": ArmSpec(sft="mid", grpo="hard")})
    return {n: to_dict(s) for n, s in selections.items()}


def test_which_selections_needed_the_scores():
    specs = _specs()
    assert not uses_scores("fullset", specs) and not uses_scores("random", specs)  # random of mid_hard's size: size only
    assert uses_scores("mid_hard", specs) and uses_scores("hard", specs)
    assert uses_scores("rand_excl_hard", specs) and uses_scores("rand_of_mid", specs)  # membership through exclude / pool
    scored = scoring_generations({"sft": {"selection": "mid"}, "grpo": {"selection": "hard"}}, specs, PISM, CMAB)
    assert scored == {"scoring": 1234, "scoring_by": {"pism": 1200, "cmab": 34}}
    assert scoring_generations({"grpo": {"selection": "random"}}, specs, PISM, CMAB)["scoring"] == 0
    # an arm whose GRPO samples online reads the scores through its sampler's prior, even on the full set
    assert scoring_generations({"grpo": {"selection": "fullset"}}, specs, PISM, CMAB, online=True)["scoring"] == 1234


def test_online_arm_is_the_full_set_with_the_sampler_on_its_grpo_stage_only(tmp_path):
    from pipelines.demo.config import ArmConfig, DemoConfig, arm_samples_online
    from pipelines.demo.run import arm_curriculum

    cfg = DemoConfig()
    cfg.arms["sft_online"] = ArmConfig("sft_mid_grpo_hard", ["sampler.kind=online"])
    assert cfg.arms["online"].select_arm == "grpo_fullset"
    assert {label: arm_samples_online(cfg, label) for label in ("fullset", "online", "sft_online")} == {
        "fullset": False, "online": True, "sft_online": True}
    select = {"arms": {"grpo_fullset": {"grpo": {"path": "fullset"}}, "sft_mid_grpo_hard": {"sft": {"path": "mid"}, "grpo": {"path": "hard"}}}}
    stages = {s.name: s for s in arm_curriculum(cfg, "sft_online", 0, select, tmp_path / "m", tmp_path).stages}
    assert stages["grpo"].overrides == [*cfg.grpo.overrides, "sampler.kind=online"]
    assert "sampler.kind=online" not in stages["sft"].overrides


def _run(tmp_path: Path, name: str, shares: list[float], group: int = 4, prompts: int = 2, sft: bool = False) -> dict:
    folder = tmp_path / name
    folder.mkdir()
    rollouts = group * prompts
    rows = [{"step": i + 1, "reward": 0.2 + 0.01 * i, "informative_share": s, "rollouts": rollouts,
             "zero_signal_rollouts": round((1 - s) * prompts) * group, "unscored_rollouts": 0, "adv_abs_mean": 0.8 * s,
             "reward_std": 0.4, "reward_std_in_group": 0.3} for i, s in enumerate(shares)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    grpo = {"name": "grpo", "kind": "grpo", "steps": len(rows), "reward_first": rows[0]["reward"], "reward_last": rows[-1]["reward"],
            "metrics": str(folder / "metrics.jsonl")}
    return {"final_model": str(folder), "stages": ([{"name": "sft", "kind": "sft", "metrics": None}] if sft else []) + [grpo]}


def _eval(models: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame([{"model": m, "id": f"i{i}", "task": "color", "pass_rate": r} for m, rates in models.items() for i, r in enumerate(rates)])


def test_arm_records_carry_mechanism_cost_and_comparison(tmp_path):
    specs = _specs()
    arm_sets = {"fullset": {"grpo": {"selection": "fullset", "count": 20}}, "random": {"grpo": {"selection": "random", "count": 8}},
                "mid_hard": {"grpo": {"selection": "mid_hard", "count": 8}},
                "sft_grpo": {"sft": {"selection": "mid", "count": 3}, "grpo": {"selection": "hard", "count": 5}}}
    train = {"fullset-s0": _run(tmp_path, "f", [0.5, 0.5, 0.0, 0.5, 0.5]), "random-s0": _run(tmp_path, "r", [0.5] * 5),
             "mid_hard-s0": _run(tmp_path, "m", [1.0, 1.0, 0.5, 1.0, 1.0]), "sft_grpo-s0": _run(tmp_path, "s", [1.0] * 5, sft=True)}
    noise = {"fullset-s0": {"margin_in_diff_sd": 2.5, "noise": {"generations": 64}}, "random-s0": {"margin_in_diff_sd": 0.5, "noise": {"generations": 64}},
             "mid_hard-s0": None, "sft_grpo-s0": {"margin_in_diff_sd": -1.0, "noise": {"generations": 64}}}
    rows = comparison_rows(_eval({"base": [0, 0, 1, 1], "fullset-s0": [0, 1, 1, 1], "random-s0": [0, 0, 1, 1], "mid_hard-s0": [1, 1, 1, 1],
                                  "sft_grpo-s0": [0, 0, 0, 1]}), arm_sets, [0])
    out = measure_arms(arm_sets, specs, rows, train, noise, [0], PISM, CMAB)
    arms = out["arms"]
    assert set(arms) == set(arm_sets)

    full, mid, rnd, sft = arms["fullset"], arms["mid_hard"], arms["random"], arms["sft_grpo"]
    assert full["informative_share"] == 0.4 and mid["informative_share"] == 0.9
    assert full["informative_share_first"] == 0.5 and full["informative_share_last"] == 0.5  # window = 1 step at 5 steps
    assert full["zero_signal_share"] == pytest.approx(1 - full["informative_share"])  # consistent counters
    assert full["train_reward_margin_sd"] == 2.5 and mid["train_reward_margin_sd"] is None  # not measured, not zero
    assert full["train_reward_first"] == 0.2 and full["train_reward_last"] == 0.24

    # cost: scoring only where the selection read a score; training = 5 steps x 2 prompts x 4 responses
    assert full["generations"]["scoring"] == 0 and rnd["generations"]["scoring"] == 0
    assert mid["generations"]["scoring"] == sft["generations"]["scoring"] == 1234
    for a in arms.values():
        g = a["generations"]
        assert g["training"] == 40 and g["total"] == g["scoring"] + g["training"]
        assert 0 <= g["zero_signal"] <= g["training"]
    assert mid["vs_base"] == 0.5 and mid["acc_gain_per_1k_generations"] == pytest.approx(1000 * 0.5 / 1274, abs=1e-5)
    assert rnd["vs_base"] == 0.0 and rnd["acc_gain_per_1k_generations"] == 0.0
    assert full["generations"]["noise_measurement"] == 64 and mid["generations"]["noise_measurement"] == 0

    # the comparison's fields, then the top level: 2 x the largest paired SE vs random; the best arm in SE of its vs_base
    assert mid["acc"] == 1.0 and mid["vs_random"] == 0.5 and rnd["vs_random"] is None
    largest = max(a["vs_random_se"] for a in arms.values() if a["vs_random_se"])
    assert out["detectable_effect"] == round(2 * largest, 4)
    assert out["best_arm"] == "mid_hard"
    assert out["best_arm_vs_base_in_se"] == round(mid["vs_base"] / mid["vs_base_se"], 2)

    curves = informative_curves(list(arm_sets), train, [0])
    assert curves["fullset"] == [(1, 0.5), (2, 0.5), (3, 0.0), (4, 0.5), (5, 0.5)] and set(curves) == set(arm_sets)


def test_runs_without_signal_rows_are_reported_as_not_measured(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "metrics.jsonl").write_text(json.dumps({"step": 1, "reward": 0.3}) + "\n")  # written before the signal existed
    train = {"fullset-s0": {"final_model": "m", "stages": [{"kind": "grpo", "reward_first": 0.3, "reward_last": 0.3, "metrics": str(folder / "metrics.jsonl")}]}}
    arm_sets = {"fullset": {"grpo": {"selection": "fullset", "count": 4}}}
    rows = comparison_rows(_eval({"base": [0, 1], "fullset-s0": [1, 1]}), arm_sets, [0])
    out = measure_arms(arm_sets, _specs(), rows, train, {}, [0], PISM, CMAB)
    a = out["arms"]["fullset"]
    assert a["informative_share"] is None and a["generations"]["training"] is None and a["generations"]["total"] is None
    assert a["acc_gain_per_1k_generations"] is None and out["detectable_effect"] is None
