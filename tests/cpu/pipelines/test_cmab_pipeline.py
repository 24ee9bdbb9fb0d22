"""CMAB pipeline on Ray Data with the warm tiny model: PISM's verified answers are reused as they
are, ids PISM did not score are solved by generate-and-verify, bad records land in quarantine,
and a kill -9 of the driver mid-run followed by the same command gives the uninterrupted output."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.data.response import format_response
from pipeline_inputs import kill_mid_run_then_rerun, spread_rows, write_small_files
from engine.verifiers import verify

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def job_inputs(warm_corpus, tmp_path_factory):
    picked = spread_rows(warm_corpus)
    picked[3]["images"] = [{"bytes": b"not an image", "path": None}]
    picked[7]["messages"] = picked[7]["messages"][:0]
    src = write_small_files(picked, tmp_path_factory.mktemp("cmab-in"), 2)
    # A PISM scores file as PISM writes it: three verified clean-image answers, one unsolved; the
    # other ids have no PISM verdict and go to the fallback.
    pism = src.parent / "pism-scores.parquet"
    pq.write_table(pa.table({
        "id": [picked[i]["id"] for i in (0, 1, 2, 4)],
        "unsolved": [False, False, False, True],
        "error": [None, None, None, None],
        "clean_response": [format_response(picked[i]["answer"]) for i in (0, 1, 2)] + [None],
    }), pism)
    return src, pism, picked


def _cmd(src, pism, out, model, heatmap_id):
    return [sys.executable, "-m", "pipelines.cli", "score", "cmab", "--config", str(REPO / "configs" / "cmab" / "tiny.yaml"),
            f"input={src}", f"output={out}", f"model_path={model}", f"responses.pism_scores={pism}",
            "generation.temperature=0.0", "responses.draws=1",  # greedy: the same answer whatever the batch
            f"heatmaps.ids=[{heatmap_id}]", "heatmaps.per_task=0", "actors.batch_size=2", "rows_per_block=2"]


def test_cmab_pipeline_reuses_pism_quarantines_and_resumes_after_kill(ray_session, warm_model, job_inputs, tmp_path):
    src, pism, picked = job_inputs
    ids = [r["id"] for r in picked]
    env = {**os.environ, "RAY_ADDRESS": ray_session.get_runtime_context().gcs_address}
    straight = tmp_path / "straight"
    subprocess.run(_cmd(src, pism, straight, warm_model, ids[0]), env=env, check=True, capture_output=True, timeout=900)

    killed = tmp_path / "killed"
    cmd = _cmd(src, pism, killed, warm_model, ids[0])
    kill_mid_run_then_rerun(cmd, killed, env, poll_s=0.2)

    a = pd.read_parquet(straight / "scores.parquet")
    b = pd.read_parquet(killed / "scores.parquet")
    quarantine = pd.read_parquet(killed / "quarantine.parquet")
    assert sorted(list(b["id"]) + list(quarantine["id"])) == sorted(ids)  # nothing lost, nothing duplicated
    assert dict(zip(quarantine["id"], quarantine["error"])) == {ids[3]: "image_corrupt", ids[7]: "empty_messages"}
    cols = ["id", "rho_bar", "bucket", "unsolved", "response_source", "response", "generations", "config_hash"]
    pd.testing.assert_frame_equal(a[cols].reset_index(drop=True), b[cols].reset_index(drop=True))
    assert b["error"].isna().all() and "attention_rows" not in b.columns

    by_id = b.set_index("id")
    for i in (0, 1, 2):  # PISM's answers scored as they are, no generation spent
        row = by_id.loc[ids[i]]
        assert row.response_source == "pism" and row.response == format_response(picked[i]["answer"]) and row.generations == 0
        assert row.rho_bar > 0 and row.bucket in {"easy", "mid", "hard"}
    assert by_id.loc[ids[4], "unsolved"] and pd.isna(by_id.loc[ids[4], "rho_bar"])  # PISM found no correct answer
    generated = [picked[i] for i in (5, 6, 8, 9, 10, 11)]
    for s in generated:  # no PISM verdict: one greedy draw, kept only when it verifies
        row = by_id.loc[s["id"]]
        assert row.response_source == "generated" and row.generations == 1
        if row.unsolved:
            assert pd.isna(row.response) and pd.isna(row.rho_bar)
        else:
            assert verify(s["verifier"], row.response, s["answer"], json.loads(s["verifier_params"] or "{}")).passed and row.rho_bar > 0

    summary = json.loads((killed / "summary.json").read_text())
    assert summary["quarantined"] == {"image_corrupt": 1, "empty_messages": 1}
    assert summary["heatmaps"] == [str(killed / "heatmaps" / f"{ids[0]}.png")] and Path(summary["heatmaps"][0]).exists()
    assert (killed / "rho_hist.png").exists() and (killed / "layer_profile.png").exists()
    report = (killed / "report.html").read_text()
    assert report.count("data:image/png;base64,") == 3 and "image_corrupt" in report  # two plots + one heatmap inlined
    run = Path(summary["wandb_run"])
    assert run.is_relative_to(killed) and list(run.glob("*.wandb"))
