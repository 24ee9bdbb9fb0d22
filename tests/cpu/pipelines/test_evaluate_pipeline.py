"""Evaluation pipeline on Ray Data with real models (HF backend): a random-weights model as "before"
and the warm model as "after" on a slice of the held-out split. pass@k is the unbiased estimator of
the stored per-draw verdicts, non-decreasing in k; deltas come from the two models' paired items; a
corrupt image is quarantined and an engine failure is an error row, both left out of every number."""
import io
import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from pipeline_inputs import spread_rows, write_small_files
from engine.config import ConfigError, from_dict
from engine.generation.base import GenerationConfig
from engine.tracking import WandbConfig
from engine.verifiers import verify
from engine.verifiers.passk import mean_pass_at_k
from pipelines.evaluate import EvalJobConfig, run_eval
from pipelines.generate import ActorPoolConfig

K = [1, 2, 4]


def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def eval_inputs(warm_corpus, tmp_path_factory):
    picked = spread_rows(warm_corpus)
    picked[3]["images"] = [{"bytes": b"not an image", "path": None}]  # data error: quarantined
    # A valid image the processor refuses (aspect ratio > 200): the engine fails on this item only.
    picked[5]["images"] = [{"bytes": _png(300, 1), "path": None}]
    src = write_small_files(picked, tmp_path_factory.mktemp("eval-in"), 4)
    return src, picked


def _cfg(src, out, before, after) -> EvalJobConfig:
    cfg = EvalJobConfig(input=str(src), output=str(out), models={"before": str(before), "after": str(after)}, n=4, k=K, seed=0,
                        generation=GenerationConfig(backend="hf", temperature=0.7, max_new_tokens=24),
                        actors=ActorPoolConfig(num_cpus=1, batch_size=4, omp_threads=2), rows_per_block=4,
                        wandb=WandbConfig(mode="offline"))
    cfg.validate()
    return cfg


def test_k_above_n_and_greedy_draws_are_config_errors():
    with pytest.raises(ConfigError, match="k=\\[8\\] with n=4"):
        from_dict(EvalJobConfig, {"n": 4, "k": [1, 8]})
    with pytest.raises(ConfigError, match="temperature 0"):
        from_dict(EvalJobConfig, {"n": 4, "k": [1], "generation": {"temperature": 0.0}})
    from_dict(EvalJobConfig, {"n": 1, "k": [1], "generation": {"temperature": 0.0}})  # greedy accuracy


@pytest.mark.slow
def test_eval_pass_at_k_deltas_and_error_rows(ray_session, warm_model, tiny_random_model, eval_inputs, tmp_path):
    src, picked = eval_inputs
    out = tmp_path / "eval"
    summary = run_eval(_cfg(src, out, tiny_random_model, warm_model))
    by_id = {r["id"]: r for r in picked}
    good_ids = sorted(r["id"] for i, r in enumerate(picked) if i not in (3, 5))

    frames = {}
    for label in ("before", "after"):
        m = summary["models"][label]
        quarantine = pd.read_parquet(out / label / "quarantine.parquet")
        scores = pd.read_parquet(out / label / "scores.parquet")
        assert list(quarantine["id"]) == [picked[3]["id"]] and list(quarantine["error"]) == ["image_corrupt"]
        errors = scores[scores["error"].notna()]
        assert list(errors["id"]) == [picked[5]["id"]] and list(errors["error"]) == ["engine_error"]
        assert "aspect ratio" in errors["error_detail"].iloc[0]
        assert m["quarantined"] == {"image_corrupt": 1} and m["errors"] == {"engine_error": 1}
        assert m["rows"] == 12 and m["evaluated"] == 10
        ok = scores[scores["error"].isna()]
        assert sorted(ok["id"]) == good_ids and (ok["model"] == label).all() and (ok["n"] == 4).all()
        assert ok["model_id"].eq(summary["models"][label]["model_path"]).all() and ok["config_hash"].nunique() == 1
        for row in ok.itertuples():  # the stored draws are the verifier's verdicts on the stored outputs
            s = by_id[row.id]
            params = json.loads(s["verifier_params"] or "{}")
            assert list(row.draws_passed) == [verify(s["verifier"], o, s["answer"], params).passed for o in row.outputs]
            assert row.c == sum(row.draws_passed) and row.tokens == sum(row.draws_tokens)
        # pass@k recomputed from the stored per-draw results, overall and per task; monotone in k
        counts = [(len(p), int(sum(p))) for p in ok["draws_passed"]]
        for k in K:
            assert m["pass_at_k"][str(k)] == pytest.approx(mean_pass_at_k(counts, k), abs=1e-6)
        assert m["accuracy"] == pytest.approx(float((ok["c"] / ok["n"]).mean()), abs=1e-6)
        assert [m["pass_at_k"][str(k)] for k in K] == sorted(m["pass_at_k"][str(k)] for k in K)
        for task, g in ok.groupby("task"):
            t = m["per_task"][task]
            tc = [(len(p), int(sum(p))) for p in g["draws_passed"]]
            assert t["items"] == len(g)
            assert [t["pass_at_k"][str(k)] for k in K] == pytest.approx([mean_pass_at_k(tc, k) for k in K], abs=1e-6)
            assert [t["pass_at_k"][str(k)] for k in K] == sorted(t["pass_at_k"][str(k)] for k in K)
        frames[label] = ok.set_index("id")

    # before -> after deltas from the two models' paired items (here: the same 10)
    d = summary["deltas"]["after"]
    assert d["vs"] == "before" and d["paired_items"] == 10 and summary["baseline"] == "before"
    a, b = summary["models"]["after"], summary["models"]["before"]
    assert d["accuracy"] == pytest.approx(a["accuracy"] - b["accuracy"], abs=2e-6)
    for k in K:
        assert d["pass_at_k"][str(k)] == pytest.approx(a["pass_at_k"][str(k)] - b["pass_at_k"][str(k)], abs=2e-6)
    for task, v in d["per_task"].items():
        ids = frames["after"].index[frames["after"]["task"] == task]
        expect = (frames["after"].loc[ids, "pass_rate"] - frames["before"].loc[ids, "pass_rate"]).mean()
        assert v["paired_items"] == len(ids) and v["accuracy"] == pytest.approx(expect, abs=2e-6)
    assert b["accuracy"] <= a["accuracy"]  # random weights vs the warm-started model

    results = pd.read_parquet(out / "results.parquet")
    assert sorted(results["model"].unique()) == ["after", "before"] and len(results) == 22
    assert (out / "accuracy_per_task.png").exists() and (out / "pass_at_k.png").exists()
    assert (out / "report.html").read_text().count("data:image/png;base64,") == 2
    assert json.loads((out / "summary.json").read_text())["deltas"] == summary["deltas"]
    assert list(Path(summary["wandb_run"]).glob("*.wandb"))

    # The same command again: every id is done for both models, nothing is regenerated, same numbers.
    parts = {label: sorted(p.name for p in (out / label / "parts").glob("*.parquet")) for label in ("before", "after")}
    again = run_eval(_cfg(src, out, tiny_random_model, warm_model))
    assert {label: sorted(p.name for p in (out / label / "parts").glob("*.parquet")) for label in parts} == parts
    assert again["models"]["after"]["pass_at_k"] == a["pass_at_k"] and again["deltas"] == summary["deltas"]
