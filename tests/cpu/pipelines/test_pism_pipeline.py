"""PISM pipeline on Ray Data: hostile records land in quarantine; a kill -9 of the driver mid-run
followed by the same command gives output identical to an uninterrupted run."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.cmab.responses import responses_from_pism
from engine.data.sample import SAMPLE_SCHEMA
from engine.data.shards import shard_paths

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def corpus(warm_corpus, tmp_path_factory):
    rows = []
    for path in shard_paths(warm_corpus / "test"):
        rows += pq.read_table(path).to_pylist()
    picked = rows[::50][:12]  # spread over the families
    picked[3]["images"] = [{"bytes": b"not an image", "path": None}]
    picked[7]["messages"] = picked[7]["messages"][:0]
    src = tmp_path_factory.mktemp("pism-in")
    for i in range(0, len(picked), 2):  # small files -> small blocks -> results are written while the job runs
        pq.write_table(pa.Table.from_pylist(picked[i : i + 2], schema=SAMPLE_SCHEMA), src / f"part-{i:05d}.parquet")
    return src, [r["id"] for r in picked]


# hf: greedy; vllm: sampled at the config's temperature with per-draw seeds (outputs must not depend on batching)
BACKENDS = {"hf": ["generation.backend=hf", "generation.temperature=0.0"], "vllm": ["generation.backend=vllm"]}


def _cmd(src, out, model, backend):
    return [sys.executable, "-m", "engine.cli", "score", "pism", "--config", str(REPO / "configs" / "pism" / "tiny.yaml"),
            f"input={src}", f"output={out}", f"generation.model_path={model}", *BACKENDS[backend],
            "pism.ratios=[0.0, 0.5]", "pism.draws=2", "pism.tau=0.5", "actors.batch_size=2", "rows_per_block=2"]


def _env(ray_session):
    return {**os.environ, "RAY_ADDRESS": ray_session.get_runtime_context().gcs_address}


@pytest.mark.parametrize("backend", ["hf", "vllm"])
def test_pism_pipeline_quarantines_and_resumes_after_kill(ray_session, warm_model, corpus, tmp_path, backend):
    src, ids = corpus
    env = _env(ray_session)
    straight = tmp_path / "straight"
    subprocess.run(_cmd(src, straight, warm_model, backend), env=env, check=True, capture_output=True, timeout=900)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(src, killed, warm_model, backend), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while time.time() < deadline and not list((killed / "parts").glob("*.parquet")):
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # kill -9 of the driver, mid-write
    proc.wait()
    assert not (killed / "scores.parquet").exists(), "the run finished before it could be killed"
    subprocess.run(_cmd(src, killed, warm_model, backend), env=env, check=True, capture_output=True, timeout=900)

    a = pd.read_parquet(straight / "scores.parquet")
    b = pd.read_parquet(killed / "scores.parquet")
    quarantine = pd.read_parquet(killed / "quarantine.parquet")
    assert sorted(list(b["id"]) + list(quarantine["id"])) == sorted(ids)  # nothing lost, nothing duplicated
    assert dict(zip(quarantine["id"], quarantine["error"])) == {ids[3]: "image_corrupt", ids[7]: "empty_messages"}
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
