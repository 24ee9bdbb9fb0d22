"""The comparison table's arithmetic on hand-made eval rows (unit-scoped: no model involved)."""
import pandas as pd
import pytest

from pipelines.demo.compare import comparison_rows, reading


def _rows(model: str, rates: list[float], task: str = "color") -> list[dict]:
    return [{"model": model, "id": f"i{i}", "task": task, "pass_rate": r} for i, r in enumerate(rates)]


ARMS = {"random": {"grpo": {"selection": "random", "count": 8}},
        "mid_hard": {"grpo": {"selection": "mid_hard", "count": 8}},
        "sft_grpo": {"sft": {"selection": "mid", "count": 3}, "grpo": {"selection": "hard", "count": 5}}}


def test_paired_differences_and_paradigms():
    base = [0.0, 0.5, 0.5, 1.0]
    frame = pd.DataFrame(_rows("base", base) + _rows("random-s0", [0.5, 0.5, 0.5, 1.0])
                         + _rows("mid_hard-s0", [0.5, 1.0, 1.0, 1.0]) + _rows("sft_grpo-s0", base))
    rows = {r["data"]: r for r in comparison_rows(frame, ARMS, [0])}
    assert rows["base (warm start)"]["acc"] == 0.5
    assert rows["mid_hard"]["acc"] == 0.875 and rows["mid_hard"]["vs_base"] == 0.375
    assert rows["mid_hard"]["vs_random"] == 0.25  # paired over the same four items
    assert rows["random"]["vs_random"] is None and rows["sft_grpo"]["vs_base"] == 0.0
    assert rows["sft_grpo"]["paradigm"] == "SFT+GRPO" and rows["mid_hard"]["paradigm"] == "GRPO-only"
    assert rows["sft_grpo"]["train_sets"] == "SFT(mid, 3) + GRPO(hard, 5)"
    # paired SE of (0.5, 0.5, 0.5, 0) - mean 0.375: sd 0.25 / sqrt(4)
    assert rows["mid_hard"]["vs_base_se"] == pytest.approx(0.125)
    assert rows["mid_hard"]["color"] == 0.875


def test_seed_spread_and_reading():
    frame = pd.DataFrame(_rows("base", [0.0, 0.0]) + _rows("random-s0", [1.0, 0.0]) + _rows("random-s1", [0.0, 0.0])
                         + _rows("mid_hard-s0", [1.0, 1.0]) + _rows("mid_hard-s1", [1.0, 0.0])
                         + _rows("sft_grpo-s0", [0.0, 0.0]) + _rows("sft_grpo-s1", [0.0, 0.0]))
    rows = comparison_rows(frame, ARMS, [0, 1])
    by = {r["data"]: r for r in rows}
    assert by["mid_hard"]["acc"] == 0.75 and by["mid_hard"]["sd_seeds"] == pytest.approx(0.3536, abs=1e-4)
    assert by["random"]["acc"] == 0.25
    text = reading(rows)
    assert text[0].startswith("Highest held-out accuracy: mid_hard")


def test_errored_items_are_left_out_not_counted_wrong():
    frame = pd.DataFrame(_rows("base", [1.0, None]) + _rows("random-s0", [1.0, 0.0]))
    rows = {r["data"]: r for r in comparison_rows(frame, {"random": ARMS["random"]}, [0])}
    assert rows["base (warm start)"]["acc"] == 1.0
    assert rows["random"]["vs_base"] == 0.0  # paired only on the item both evaluated
