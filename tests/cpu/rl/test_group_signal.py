"""The GRPO mechanism metrics and the reward-margin arithmetic on fixed reward tables.

Unit-scoped: the rewards and advantages below are hand-made tables, no model or trainer runs.
The real TRL run that logs these per step is tests/cpu/rl/test_grpo_trl_on_cpu.py.
"""
import json
import math
from pathlib import Path

import pytest

from rl.grpo.group_signal import group_signal, informative, round_signal, signal_by_step, summarize_signal
from rl.grpo.reward_noise import reward_margin

REPO = Path(__file__).resolve().parents[3]

# 4 prompts x 4 responses in TRL's layout: all right, mixed, all wrong, mixed with one unscored
TABLE = [1.0, 1.0, 1.0, 1.0,
         1.0, 0.0, 0.0, 1.0,
         0.0, 0.0, 0.0, 0.0,
         0.0, None, 1.0, 0.0]


def test_informative_share_counts_groups_whose_rewards_differ():
    row = round_signal(TABLE, 4)
    assert row["groups"] == 4 and row["rollouts"] == 16
    assert row["informative_share"] == 0.5  # groups 2 and 4
    assert row["zero_signal_rollouts"] == 8  # all-right and all-wrong groups: 2 x 4 rollouts for no gradient
    assert row["zero_signal_rollouts"] == (1 - row["informative_share"]) * row["rollouts"]
    assert row["unscored_rollouts"] == 1
    scored = [r for r in TABLE if r is not None]
    assert row["reward_mean"] == pytest.approx(sum(scored) / 15)
    mean = sum(scored) / 15
    assert row["reward_std"] == pytest.approx(math.sqrt(sum((r - mean) ** 2 for r in scored) / 14))
    # within-group sd: 0, sd(1,0,0,1), 0, sd(0,1,0)
    sd4 = math.sqrt(4 * 0.25 / 3)
    sd3 = math.sqrt((2 * (1 / 3) ** 2 + (2 / 3) ** 2) / 2)
    assert row["reward_std_in_group"] == pytest.approx((0 + sd4 + 0 + sd3) / 4)
    assert "adv_abs_mean" not in row


def test_groups_that_cannot_give_a_gradient_are_not_informative():
    # fewer than two scored rewards: TRL's nanstd is NaN there (counted as non-zero std), yet nothing is learned
    assert not informative([None, None, 1.0, None])
    assert not informative([None, None])
    assert not informative([0.3, 0.3 + 1e-12])  # within TRL's zero-std tolerance
    assert informative([0.3, 0.31, None])
    row = round_signal([None, None, 1.0, None, 0.5, 0.5, 0.5, 0.5], 4)
    assert row["informative_share"] == 0.0 and row["zero_signal_rollouts"] == 8 and row["reward_std_in_group"] == 0.0


def test_mean_absolute_advantage_is_over_every_completion():
    adv = [0.0] * 4 + [0.866, -0.866, -0.866, 0.866] + [0.0] * 4 + [-0.577, 0.0, 1.155, -0.577]
    row = round_signal(TABLE, 4, adv)
    assert row["adv_abs_mean"] == pytest.approx(sum(abs(a) for a in adv) / 16)
    with pytest.raises(ValueError, match="advantages"):
        round_signal(TABLE, 4, adv[:-1])
    with pytest.raises(ValueError, match="groups of 3"):
        round_signal(TABLE, 3)


def test_rollout_rows_group_by_step_and_sample_id():
    # a verl-style dump: rows in any order, one prompt's responses keyed by its sample id
    rows = ([{"step": 1, "id": "a", "score": s} for s in (1.0, 0.0)] + [{"step": 1, "id": "b", "score": s} for s in (1.0, 1.0)]
            + [{"step": 2, "id": "a", "score": s} for s in (0.0, 0.0)] + [{"step": 2, "id": None, "score": 1.0}])
    by_step = signal_by_step(reversed(rows))
    assert [r["step"] for r in by_step] == [1, 2]
    assert by_step[0]["informative_share"] == 0.5 and by_step[0]["zero_signal_rollouts"] == 2
    assert by_step[1]["informative_share"] == 0.0 and by_step[1]["rollouts_without_id"] == 1  # counted, not dropped
    assert group_signal([[1.0, 0.0], [1.0, 1.0]]) == {k: v for k, v in by_step[0].items() if k not in ("step", "rollouts_without_id")}


def test_run_summary_windows_and_totals():
    rows = [{"step": i + 1, "reward": 0.1, "informative_share": share, "rollouts": 16, "zero_signal_rollouts": int((1 - share) * 16),
             "unscored_rollouts": 0, "adv_abs_mean": share, "reward_std": 0.4, "reward_std_in_group": 0.2}
            for i, share in enumerate([0.25, 0.5, 0.5, 0.75, 1.0])]
    s = summarize_signal(rows, 2)
    assert s["steps"] == 5 and s["window"] == 2
    assert s["informative_share"] == {"mean": 0.6, "first": 0.375, "last": 0.875}
    assert s["rollouts"] == 80 and s["zero_signal_rollouts"] == 12 + 8 + 8 + 4 + 0
    assert s["zero_signal_share"] == pytest.approx(32 / 80)
    # metrics written before these numbers existed: not measured, never a made-up zero
    old = summarize_signal([{"step": 1, "reward": 0.2}], 1)
    assert old["informative_share"] == {"mean": None, "first": None, "last": None} and old["rollouts"] is None
    assert old["zero_signal_share"] is None and old["steps"] == 0


def test_reward_margin_is_grpo_tinys_number():
    # the noise windows and reward windows benchmarks/grpo_tiny.py recorded: the library reproduces its verdict
    record = json.loads((REPO / "benchmarks" / "results" / "grpo_tiny.json").read_text())
    m = reward_margin(record["reward_first"], record["reward_last"], record["noise"]["window_means"])
    assert m["margin"] == record["margin"] and m["window_sd"] == record["noise"]["window_sd"]
    assert m["diff_sd"] == record["noise"]["diff_sd"]
    assert m["margin_in_diff_sd"] == pytest.approx(record["margin_in_diff_sd"], abs=0.01)
    assert m["beyond_noise"] is record["beyond_noise"]
    flat = reward_margin(0.5, 0.5, [0.4, 0.6])
    assert flat["margin_in_diff_sd"] == 0.0 and not flat["beyond_noise"]
    assert reward_margin(0.2, 0.5, [0.3, 0.3, 0.3])["margin_in_diff_sd"] is None  # no noise measured: no ratio


def test_verl_dump_gets_the_same_signal_names(tmp_path):
    """verl logs no informative share; `gradus data pass-rates` computes it from verl's rollout dump,
    written here by verl 0.9.1's own writer with hand-set scores (no verl training)."""
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer

    from rl.grpo.rollout_log import verl_pass_rates

    dump = tmp_path / "run" / "rollouts"
    steps = {1: {"a": [1.0, 0.0, 0.0], "b": [1.0, 1.0, 1.0]}, 2: {"a": [0.0, 0.0, 0.0], "b": [0.5, 1.0, 0.0]}}
    for step, groups in steps.items():
        scores = [s for g in groups.values() for s in g]
        ids = [sid for sid, g in groups.items() for _ in g]
        n = len(scores)
        RayPPOTrainer._write_generations(["q"] * n, ["r"] * n, ["gt"] * n, scores, {"sample_id": ids, "acc": scores}, str(dump), step)
    result = verl_pass_rates(str(dump), str(tmp_path / "pass_rates.parquet"), model_id="m")
    signal = result["signal"]
    assert [r["informative_share"] for r in signal["per_step"]] == [0.5, 0.5]
    assert [r["zero_signal_rollouts"] for r in signal["per_step"]] == [3, 3]
    assert signal["rollouts"] == 12 and signal["zero_signal_share"] == 0.5
    assert signal["informative_share"]["mean"] == 0.5 and signal["adv_abs_mean"]["mean"] is None  # verl dumps no advantages
    assert signal["per_step"][1]["reward_mean"] == pytest.approx(1.5 / 6)
