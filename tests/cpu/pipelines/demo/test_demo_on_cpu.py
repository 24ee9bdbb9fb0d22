"""`gradus demo` (what `make demo` runs) end to end through the console script, at a small size.

The same pipeline as configs/demo.yaml (PISM on vLLM, CMAB, store, selections, SFT on Ray Train,
GRPO on TRL, eval on vLLM, report), shrunk: 36 pool samples, a few training steps, 12 held-out items.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[4]
TRAINED_SAME_BUDGET = 2


def _small_config(tmp_path: Path) -> Path:
    cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    cfg["pool"] = "warmstart:configs/warmstart/tiny.yaml:train?per_task=6"
    cfg["heldout_limit"] = 12
    cfg["out_dir"] = str(tmp_path / "demo")
    cfg["pism"]["overrides"] = ["pism.draws=4", "actors.batch_size=18"]
    cfg["sft"]["overrides"] = ["max_steps=2", "batch_size=2", "log_every=1"]
    cfg["grpo"]["overrides"] = [f"algorithm.steps={TRAINED_SAME_BUDGET}", "algorithm.prompts_per_step=2", "algorithm.group_size=2"]
    # HF eval here (vLLM eval has its own tests): five vLLM engine start-ups would double this test
    cfg["eval"]["overrides"] = ["n=2", "k=[1,2]", "actors.batch_size=6", "generation.backend=hf"]
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(config: Path, cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "gradus"
    return subprocess.run([str(exe), "demo", "--config", str(config)], capture_output=True, text=True, timeout=1500, cwd=cwd)


@pytest.mark.slow
def test_demo_runs_the_main_job_end_to_end(warm_model, tmp_path):
    # warm_model makes sure the cached embedded default exists, so this measures the demo path only
    config = _small_config(tmp_path)
    run = _run(config, tmp_path)
    assert run.returncode == 0, run.stderr[-4000:]
    out = tmp_path / "demo"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model_path"] == str(warm_model)
    assert isinstance(summary["warmstart"]["accepted"], bool)  # the band itself is benchmarked, not tested
    assert ("warning" in summary) != summary["warmstart"]["accepted"]  # an out-of-band default model is said out loud

    # scoring: every pool sample scored by PISM; CMAB reuses PISM's verified answers (no new generations)
    pism, cmab = summary["pism"], summary["cmab"]
    assert pism["rows"] == 36 and pism["scored"] == 36
    assert cmab["rows"] == 36 and cmab["generations"] == 0
    assert summary["store"]["rows"] == 36

    # selections: fullset is the pool, the random control is the size of mid+hard, the SFT/GRPO pair is disjoint
    sizes = summary["select"]["selections"]
    assert sizes["fullset"] == 36 and sizes["random"] == sizes["mid_hard"] == sizes["mid"] + sizes["hard"]

    # training: every trainable arm ran the same GRPO step budget from the warm-started model
    trained = summary["train"]
    assert set(trained) | {f"{a}-s0" for a in summary["arms_not_trained"]} == {f"{a}-s0" for a in ("fullset", "random", "mid_hard", "sft_grpo", "online")}
    assert "fullset-s0" in trained and "random-s0" in trained
    for name, run_record in trained.items():
        grpo = [s for s in run_record["stages"] if s["kind"] == "grpo"]
        assert len(grpo) == 1 and grpo[0]["steps"] == TRAINED_SAME_BUDGET, name
        meta = json.loads((Path(run_record["final_model"]) / "gradus_model.json").read_text())
        first_parent = run_record["stages"][0]
        assert Path(run_record["final_model"]).is_dir() and meta["stage"] == "grpo"
        if name.startswith("sft_grpo"):  # GRPO started from the SFT stage's output, SFT from the warm start
            assert [s["kind"] for s in run_record["stages"]] == ["sft", "grpo"]
            assert meta["parent"] == first_parent["output_model"]
        else:
            assert meta["parent"] == str(warm_model)

    # evaluation: base + every trained arm on the same held-out items
    ev = summary["eval"]
    assert set(ev["models"]) == {"base", *trained}
    assert {m["evaluated"] for m in ev["models"].values()} == {12}

    # the report: one offline HTML file with the comparison, PNGs beside it
    report = Path(summary["report"])
    html = report.read_text()
    for section in ("Comparison (paper structure", "Corpus", "Selections", "Training runs", "pass@k", "PISM x CMAB"):
        assert section in html, section
    assert "http://" not in html and "https://" not in html  # opens offline: every image is inlined
    for png in ("comparison.png", "pism_vs_cmab.png", "reward_curves.png"):
        assert (out / "report" / png).stat().st_size > 0
    rows = {r["data"]: r for r in summary["comparison"]}
    assert set(rows) == {"base (warm start)", *(n.rsplit("-s", 1)[0] for n in trained)}
    assert all(0.0 <= r["acc"] <= 1.0 for r in rows.values())

    # the GRPO mechanism and the cost per arm (pipelines/demo/measures.py), plotted in the report
    assert (out / "report" / "informative_share.png").stat().st_size > 0 and "GRPO mechanism and cost per arm" in html
    arms = summary["arms"]
    assert set(arms) == set(rows) - {"base (warm start)"}
    per_step = 2 * 2  # prompts_per_step x group_size
    for label, a in arms.items():
        assert {"acc", "vs_base", "vs_base_se", "vs_random", "vs_random_se"} <= set(a), label
        assert 0.0 <= a["informative_share"] <= 1.0, label
        g = a["generations"]
        assert g["training"] == TRAINED_SAME_BUDGET * per_step, label  # the run's own counters: steps x prompts x responses
        assert g["zero_signal"] == round((1 - a["informative_share"]) * g["training"]), label
        difficulty_selected = label in ("mid_hard", "sft_grpo", "online")  # online: its sampler's prior reads the scores
        assert g["scoring"] == (pism["generations"] + cmab["generations"] if difficulty_selected else 0), label
        assert g["total"] == g["scoring"] + g["training"]
        assert a["acc_gain_per_1k_generations"] == pytest.approx(1000 * a["vs_base"] / g["total"], abs=1e-5)
        noise = summary["train_noise"][f"{label}-s0"]
        assert noise["noise"]["generations"] == 8 * 1 * per_step  # noise_repeats windows of 1 step (reward_window at 2 steps)
        if noise["window_sd"] > 0:
            assert a["train_reward_margin_sd"] == pytest.approx(noise["margin"] / noise["diff_sd"], abs=0.02)
        else:  # every noise window scored the same: no sd to measure the rise in
            assert a["train_reward_margin_sd"] is None
    assert "detectable_effect" in summary and "best_arm_vs_base_in_se" in summary
    ses = [a["vs_random_se"] for a in arms.values() if a["vs_random_se"]]
    assert summary["detectable_effect"] == (round(2 * max(ses), 4) if ses else None)

    # rerun: every stage is in the ledger, nothing is scored, trained or evaluated again
    again = _run(config, tmp_path)
    assert again.returncode == 0, again.stderr[-4000:]
    for stage in ("pism", "cmab", "store", "select", "eval", *(f"train/{n}" for n in trained), *(f"noise/{n}" for n in trained)):
        assert f"[demo] {stage}: done earlier" in again.stderr, stage
    rerun = json.loads((out / "summary.json").read_text())
    assert rerun["comparison"] == summary["comparison"] and rerun["arms"] == summary["arms"]
