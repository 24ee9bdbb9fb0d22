"""Format checks (stage-aware), composite rewards (MoDoMoDo weights + gate, V-Triune blend), pass@k."""
import pytest

from engine.config import ConfigError, from_dict
from engine.verifiers import RewardConfig, check_format, compute_reward, mean_pass_at_k, pass_at_k

GOOD = "<think>count them</think><answer>\\boxed{3}</answer>"


@pytest.mark.parametrize("output,params,passed,reason", [
    (GOOD, {}, True, ""),
    ("<think>a</think>\n<answer>yes</answer>\n", {"stage": "judge"}, True, ""),
    ("<think>a</think><answer>[1, 2, 3, 4]</answer>", {"stage": "judge"}, False, "answer_not_yesno"),
    ("<think>a</think><answer>yes</answer>", {"answer_kind": "box"}, False, "answer_not_box"),  # a yes/no stage never demands a box...
    ("<think>a</think><answer>[1, 2, 3, 4]</answer>", {"answer_kind": "box"}, True, ""),  # ...the open detection stage does
    ("<think>a</think><answer>B, D</answer>", {"stage": "choice"}, True, ""),
    ("<answer>3</answer>", {}, False, "missing_tag:<think>"),
    ("<think>a</think><think>b</think><answer>3</answer>", {}, False, "repeated_tag:<think>"),
    ("<answer>3</answer><think>a</think>", {}, False, "tag_order"),
    ("Sure! <think>a</think><answer>3</answer>", {}, False, "text_outside_tags"),
    ("<think>a</think><answer>  </answer>", {}, False, "answer_not_any"),
])
def test_think_answer_format(output, params, passed, reason):
    r = check_format("think_answer", output, params)
    assert (r.passed, r.reason) == (passed, reason)


def test_vtriune_four_part_format_score():
    assert check_format("vtriune", "<think>\nx\n</think>\n<answer>\n3\n</answer>").score == 1.0
    assert check_format("vtriune", "<think>\nx</think><answer>3</answer>").score == 0.25
    assert check_format("vtriune", "<think>\nx\n</think>\n<answer>\n3\n</answer><think>\n").score == 0.75
    assert check_format("boxed", "so \\boxed{3}").passed and not check_format("boxed", "\\boxed{3").passed


def test_modomodo_weights_and_format_gate():
    cfg = RewardConfig()  # weighted: acc 2, iou 2, format 1, gate on
    r = compute_reward(GOOD, "3", "count", {}, cfg)
    assert (r.score, r.acc, r.format) == (3.0, 1.0, 1.0)
    ungated = compute_reward("\\boxed{3}", "3", "count", {}, cfg)
    assert (ungated.score, ungated.acc, ungated.format) == (0.0, 1.0, 0.0)  # gate zeroes, acc still reported
    box = compute_reward("<think>a</think><answer>[0, 0, 10, 10]</answer>", "[0, 0, 10, 20]", "iou", {"image_size": [100, 100]}, cfg)
    assert box.iou == pytest.approx(0.5) and box.acc == 1.0 and box.score == pytest.approx(2 * 1 + 2 * 0.5 + 1)
    no_gate = RewardConfig(format_gate=False)
    assert compute_reward("\\boxed{3}", "3", "count", {}, no_gate).score == 2.0


def test_vtriune_blend():
    cfg = from_dict(RewardConfig, {"combine": "vtriune", "format": "vtriune", "alpha": 1.0, "beta": 0.1})
    r = compute_reward("<think>\nx\n</think>\n<answer>\n\\boxed{3}\n</answer>", "3", "count", {}, cfg)
    assert r.score == pytest.approx(1.0)
    r = compute_reward("<answer>\\boxed{3}</answer>", "3", "count", {}, cfg)
    assert r.score == pytest.approx(1.0 / 1.1)


def test_per_task_verifier_choice_and_stage():
    cfg = from_dict(RewardConfig, {"format": "think_answer", "stage": "judge",
                                   "tasks": {"detection": {"verifier": "yesno"}}})
    r = compute_reward("<think>a</think><answer>yes</answer>", "yes", "iou", {}, cfg, task="detection")
    assert (r.acc, r.format) == (1.0, 1.0)
    with pytest.raises(ConfigError, match="unknown verifier"):
        from_dict(RewardConfig, {"tasks": {"x": {"verifier": "nope"}}})


@pytest.mark.parametrize("n,c,k,expected", [(10, 0, 1, 0.0), (10, 10, 5, 1.0), (10, 3, 1, 0.3), (4, 1, 2, 0.5), (5, 2, 2, 0.7), (3, 1, 3, 1.0)])
def test_pass_at_k_unbiased(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_average_and_errors():
    assert mean_pass_at_k([(4, 1), (4, 0)], 2) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="at least 3 samples"):
        pass_at_k(2, 1, 3)


@pytest.mark.parametrize("path", sorted(__import__("pathlib").Path(__file__).resolve().parents[3].joinpath("configs", "reward").glob("*.yaml")))
def test_shipped_reward_configs_load(path):
    from engine.config import load_config

    cfg = load_config(RewardConfig, path)
    r = compute_reward("<think>\nx\n</think>\n<answer>\n\\boxed{yes}\n</answer>", "yes", "yesno", {}, cfg)
    assert r.acc == 1.0 and r.score > 0
