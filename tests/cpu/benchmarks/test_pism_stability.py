"""benchmarks/pism_stability.compare: the agreement figures docs/demo.md reads mid_hard vs random with."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[3]


def _compare():
    spec = importlib.util.spec_from_file_location("pism_stability", REPO / "benchmarks" / "pism_stability.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.compare


def _scores(buckets: dict, errors: tuple = ()) -> pd.DataFrame:
    return pd.DataFrame({"id": list(buckets), "bucket": list(buckets.values()), "generations": [10] * len(buckets),
                         "error": ["engine_error" if i in errors else None for i in buckets]})


def test_agreement_counts_unsolved_as_a_bucket_and_skips_errored_ids():
    first = _scores({"a": "mid", "b": "hard", "c": None, "d": "easy", "e": "mid"}, errors=("e",))
    second = _scores({"a": "hard", "b": "hard", "c": None, "d": "mid", "e": "mid", "f": "easy"})
    out = _compare()(first, second)
    assert out["samples"] == 4  # e errored in the first run, f only in the second
    assert out["bucket_agreement"] == 0.5  # b (hard) and c (unsolved) agree; a and d differ
    assert out["mid_hard_agreement"] == 0.75  # a: in both; b: in both; c: out of both; d: out -> in
    assert out["mid_hard"] == {"first": 2, "second": 3, "both": 2, "both_by_chance": 1.5}
    assert out["cross_table"]["unsolved"] == {"hard": 0, "mid": 0, "unsolved": 1}  # columns: the second run's buckets


def test_agreement_per_clean_pass_rate_band():
    first = _scores({"a": "mid", "b": "hard", "c": "easy"})
    second = _scores({"a": "mid", "b": "easy", "c": "easy"})
    # clean-image rates (successes / runs at ratio 0, averaged over both runs): a 0.05, b 0.2, c 1.0
    first["successes"], first["runs"] = [[1, 0], [1, 0], [1, 1]], [[10, 1], [5, 1], [1, 1]]
    second["successes"], second["runs"] = [[0, 0], [3, 1], [1, 1]], [[10, 1], [10, 1], [1, 1]]
    bands = _compare()(first, second)["by_clean_pass_rate"]
    assert bands["0.0-0.1"] == {"samples": 1, "bucket_agreement": 1.0}
    assert bands["0.1-0.3"] == {"samples": 1, "bucket_agreement": 0.0}  # b: hard vs easy
    assert bands["0.3-0.6"] == {"samples": 0, "bucket_agreement": None}
    assert bands["0.6-1.0"] == {"samples": 1, "bucket_agreement": 1.0}  # a rate of exactly 1 falls in the top band
