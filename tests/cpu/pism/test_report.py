"""PISM survival curve and plots."""
import pandas as pd
import pytest

from engine.pism.report import survival, write_plots


def test_survival_counts_samples_still_solved_at_each_ratio():
    # lambda* None: never failed; 0.0: unsolved on the clean image; 0.5: fails from 0.5 on
    assert survival([None, 0.0, 0.5, 0.5], [0.0, 0.4, 0.5, 0.9]) == pytest.approx([0.75, 0.75, 0.25, 0.25])
    assert survival([float("nan"), 0.0], [0.0]) == [0.5]  # NaN (a null read back from parquet) = never failed


def test_plots_are_written(tmp_path):
    frame = pd.DataFrame({"task": ["a", "a", "b"], "lambda_star": [None, 0.3, 0.0], "bucket": ["easy", "hard", None], "error": [None, None, None]})
    paths = write_plots(frame, [0.0, 0.3, 0.6], tmp_path)
    assert [p.name for p in paths] == ["survival.png", "buckets.png"] and all(p.stat().st_size > 1000 for p in paths)
