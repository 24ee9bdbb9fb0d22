"""benchmarks/table4_mini's paired statistics: the SE every arm-vs-random figure of docs/demo.md is read with."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[3]


def _module():
    spec = importlib.util.spec_from_file_location("table4_mini", REPO / "benchmarks" / "table4_mini.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(models: dict) -> pd.DataFrame:
    return pd.DataFrame([{"model": m, "id": i, "pass_rate": r} for m, rates in models.items() for i, r in rates.items()])


def test_paired_difference_pairs_items_within_each_seed_and_adds_the_seed_spread():
    t4 = _module()
    rows = _rows({
        "mid-s0": {"a": 1.0, "b": 0.5, "c": 0.0},
        "random-s0": {"a": 0.5, "b": 0.5, "c": 0.0, "d": 1.0},  # d: only the control has it, so it is not paired
        "mid-s1": {"a": 0.5, "b": 0.5, "c": 0.5},
        "random-s1": {"a": 0.5, "b": 0.0, "c": 0.5},
    })
    diffs = t4.seed_diffs(rows, "mid", "random", [0, 1], ref_seeded=True)
    assert [sorted(d.index) for d in diffs] == [["a", "b", "c"], ["a", "b", "c"]]
    assert [round(float(d.mean()), 4) for d in diffs] == [round(0.5 / 3, 4), round(0.5 / 3, 4)]
    mean, se = t4.paired_over_seeds(rows, "mid", "random", [0, 1], ref_seeded=True)
    # seed-mean per-item differences: a 0.25, b 0.25, c 0; equal per-seed means, so no seed variance
    item_means = pd.Series([0.25, 0.25, 0.0])
    assert mean == round(float(item_means.mean()), 4)
    assert se == round(float(item_means.std(ddof=1)) / math.sqrt(3), 4)


def test_an_unseeded_reference_is_the_same_model_for_every_seed():
    t4 = _module()
    rows = _rows({"base": {"a": 0.0, "b": 0.0}, "mid-s0": {"a": 1.0, "b": 0.0}, "mid-s1": {"a": 0.0, "b": 0.0}})
    mean, se = t4.paired_over_seeds(rows, "mid", "base", [0, 1], ref_seeded=False)
    # per-seed means 0.5 and 0: the seed spread enters the SE (var 0.125 over 2 seeds) beside the items' part
    items = pd.Series([0.5, 0.0])
    assert mean == 0.25
    assert se == round(math.sqrt((float(items.std(ddof=1)) / math.sqrt(2)) ** 2 + 0.125 / 2), 4)
