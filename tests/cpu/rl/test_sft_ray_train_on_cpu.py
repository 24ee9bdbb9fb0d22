"""SFT on Ray Train is reproducible: one config, one model (the warm start's cache key relies on it).

Each run is `gradus train sft` in its own process (its own driver and local Ray cluster), as a user
runs it. Why not the session's shared Ray: in a fresh-clone CI run (2026-12-04) the test driver,
after some 30 Ray Data / Ray Train jobs, never got the ALIVE notice of a new TrainController (the
actor was up, its `run` call stayed PENDING_NODE_ASSIGNMENT) and the suite hung until CI's limit.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_two_runs_of_one_config_train_identical_weights(tiny_random_model, warm_corpus, tmp_path):
    import torch
    from safetensors.torch import load_file

    # The train split is several parquet files: the read's block order is what used to vary.
    assert len(list((warm_corpus / "train").glob("*.parquet"))) > 1
    summaries, weights = [], []
    for run in ("a", "b"):
        out = tmp_path / run
        cli = [sys.executable, "-m", "pipelines.cli", "train", "sft", f"model_path={tiny_random_model}",
               f"train_data={warm_corpus / 'train'}", f"output_dir={out}", "epochs=1", "max_steps=6", "batch_size=8",
               "lr=1e-3", "warmup_steps=2", "log_every=1", "shuffle_buffer=64", "seed=3"]
        done = subprocess.run(cli, capture_output=True, text=True, timeout=900, cwd=REPO, env=_env())
        assert done.returncode == 0, done.stderr[-3000:]
        summaries.append(json.loads((out / "summary.json").read_text()))
        weights.append(load_file(out / "model" / "model.safetensors"))
    assert summaries[0]["steps"] == summaries[1]["steps"] == 6
    assert summaries[0]["loss_curve"] == summaries[1]["loss_curve"]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    start = load_file(tiny_random_model / "model.safetensors")
    assert any(not torch.equal(start[k], weights[0][k]) for k in start)  # it did train


def _env() -> dict:
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)  # a cluster of its own, never the session's
    return env
