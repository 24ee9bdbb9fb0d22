"""PISM pipeline on Ray Data: hostile records land in quarantine; a kill -9 of the driver mid-run
followed by the same command gives output byte-identical to an uninterrupted run, and so does an
uninterrupted run cut into other blocks (one block holds only quarantined rows: same column types)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pipeline_inputs import kill_mid_run_then_rerun, spread_rows, write_small_files
from engine.cmab.responses import responses_from_pism

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def corpus(warm_corpus, tmp_path_factory):
    picked = spread_rows(warm_corpus)
    picked[3]["images"] = [{"bytes": b"not an image", "path": None}]
    picked[6]["meta"] = "{broken json"  # with 7: a file, and a block, of only quarantined rows
    picked[7]["messages"] = picked[7]["messages"][:0]
    src = write_small_files(picked, tmp_path_factory.mktemp("pism-in"), 2)
    return src, [r["id"] for r in picked]


# hf: greedy; vllm: sampled at the config's temperature with per-draw seeds (outputs must not depend on batching).
# hf runs every ratio (reference schedule): with two ratios its 12 rows took ~0.5 s after the engine came up, all
# parts landed in one burst and the kill came after the end (fresh-clone CI, 2026-12-04); ten ratios spread them out.
BACKENDS = {
    "hf": ["generation.backend=hf", "generation.temperature=0.0", "pism.schedule=reference",
           "pism.ratios=[0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]"],
    "vllm": ["generation.backend=vllm", "pism.ratios=[0.0, 0.5]"],
}


def _cmd(src, out, model, backend, rows_per_block=2):
    return [sys.executable, "-m", "pipelines.cli", "score", "pism", "--config", str(REPO / "configs" / "pism" / "tiny.yaml"),
            f"input={src}", f"output={out}", f"generation.model_path={model}", *BACKENDS[backend],
            "pism.draws=2", "pism.tau=0.5", "actors.batch_size=2", f"rows_per_block={rows_per_block}"]


def _env(ray_session):
    return {**os.environ, "RAY_ADDRESS": ray_session.get_runtime_context().gcs_address}


@pytest.mark.parametrize("backend", ["hf", "vllm"])
def test_pism_pipeline_quarantines_and_resumes_after_kill(ray_session, warm_model, corpus, tmp_path, backend):
    src, ids = corpus
    env = _env(ray_session)
    straight = tmp_path / "straight"
    subprocess.run(_cmd(src, straight, warm_model, backend), env=env, check=True, capture_output=True, timeout=900)

    killed = tmp_path / "killed"
    kill_mid_run_then_rerun(_cmd(src, killed, warm_model, backend), killed, env)
    other_blocks = tmp_path / "other-blocks"
    subprocess.run(_cmd(src, other_blocks, warm_model, backend, rows_per_block=5), env=env, check=True, capture_output=True, timeout=900)
    for name in ("scores.parquet", "quarantine.parquet"):
        assert (killed / name).read_bytes() == (straight / name).read_bytes() == (other_blocks / name).read_bytes(), name

    a = pd.read_parquet(straight / "scores.parquet")
    b = pd.read_parquet(killed / "scores.parquet")
    quarantine = pd.read_parquet(killed / "quarantine.parquet")
    assert sorted(list(b["id"]) + list(quarantine["id"])) == sorted(ids)  # nothing lost, nothing duplicated
    assert dict(zip(quarantine["id"], quarantine["error"])) == {ids[3]: "image_corrupt", ids[6]: "bad_json", ids[7]: "empty_messages"}
    cols = ["id", "successes", "runs", "lambda_star", "bucket", "unsolved", "generations", "tokens", "config_hash"]
    pd.testing.assert_frame_equal(a[cols].reset_index(drop=True), b[cols].reset_index(drop=True))
    assert set(a["bucket"].dropna()) and a["error"].isna().all()
    assert (killed / "survival.png").exists() and (killed / "buckets.png").exists()
    answers = responses_from_pism(killed / "scores.parquet")  # what CMAB will reuse: every scored row, unsolved ones as None
    assert set(answers) == set(b["id"]) and all((answers[i] is None) == u for i, u in zip(b["id"], b["unsolved"]))
    report = (killed / "report.html").read_text()
    assert report.count("data:image/png;base64,") == 2 and "image_corrupt" in report  # plots inlined, quarantine listed
    run = Path(json.loads((killed / "summary.json").read_text())["wandb_run"])  # offline wandb run, syncable later
    assert run.is_relative_to(killed) and list(run.glob("*.wandb"))
