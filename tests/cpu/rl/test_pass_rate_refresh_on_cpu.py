"""Online difficulty refresh: GRPO rollout pass rates -> the difficulty store -> the next stage's selection.

What this proves:
- a rollout's verdict: passed = acc >= 0.5, an unjudged attempt (or one with no number) counts
  neither way; pass rates group by id with n = judged attempts and the run's provenance, in the
  layout `store build` reads for `pass_rate@<tag>`;
- RolloutLog: a fresh run starts empty, a resume from checkpoint-S drops parts of steps > S;
- verl (format test): a dump written by verl 0.9.1's own writer (`RayPPOTrainer._write_generations`,
  fed the way `_log_rollout_data` and the agent loop feed it, from rl/reward.py compute_score's
  dicts) converts with `gradus data pass-rates`; a dump without `sample_id` is refused; the
  generated verl overrides carry `trainer.rollout_data_dir` (composed in
  test_grpo_verl_launch_on_cpu.py);
- slow: a tiny TRL GRPO run on the warm model (1 step, checkpoint, a planted part of a "crashed"
  step 2, resumed to 2 steps) writes pass_rates.parquet whose ids are exactly the prompts TRL
  generated for (seen by a spy on GRPOTrainer, not through our reward path) with n = group_size x
  times seen, per-step acc equal to TRL's logged acc; `gradus store build` adds `pass_rate@grpo.*`
  beside `pism.*`; `gradus select` range bands on `pass_rate@grpo` select exactly the expected ids.
"""
from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from engine.config import ConfigError, load_config
from engine.publish import partial_path
from engine.shaping.store import ScoreSource, load_scores
from rl.grpo.rollout_log import (ROLLOUT_SCHEMA, RolloutLog, pass_rates, read_rollouts, rollout_row, write_pass_rates)

REPO = Path(__file__).resolve().parents[3]
PROV = {"model_id": "gradus/tiny-qwen2.5-vl", "config_hash": "abc123", "seed": 0, "gradus_version": "0.1.0"}


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buf, format="PNG")
    return buf.getvalue()


def test_rollout_verdicts():
    assert rollout_row("a", 3, {"score": 2.5, "acc": 1.0, "unjudged": 0.0}, 7) == {
        "id": "a", "step": 3, "score": 2.5, "acc": 1.0, "passed": True, "response_tokens": 7, "error": None, "error_detail": None}
    assert rollout_row("a", 1, {"score": 0.4, "acc": 0.0})["passed"] is False
    assert rollout_row("a", 1, {"score": 1.0})["passed"] is True  # no acc: the score is the acc (verl's naive manager)
    bad = rollout_row("a", 1, {"score": 0.0, "acc": 0.0, "unjudged": 1.0, "reason": "unknown_verifier: 'x'"})
    assert bad["passed"] is None and bad["error"] == "unjudged" and "unknown_verifier" in bad["error_detail"]
    for reason in ("bad_ground_truth: 'x'", "error: ValueError", "worker_died", "no_verifier: extra_info carries neither"):
        assert rollout_row("a", 1, {"acc": 0.0, "unjudged": 1.0, "reason": reason})["error"] == "unjudged", reason
    # the model gave no parseable answer: a fail, as PISM and eval count it (not an infrastructure failure)
    assert rollout_row("a", 1, {"acc": 0.0, "unjudged": 1.0, "reason": "no_answer"})["passed"] is False
    assert rollout_row("a", 1, {"acc": 0.0, "unjudged": 1.0, "reason": "answer_too_long"})["error"] is None
    assert rollout_row(None, 1, {"score": float("nan")})["error"] == "no_verdict"


def test_pass_rates_group_by_id_and_the_store_reads_them(tmp_path):
    rows = ([rollout_row("a", 1, {"score": 1.0, "acc": 1.0}, 5)] * 3 + [rollout_row("a", 2, {"score": 0.0, "acc": 0.0}, 9)]
            + [rollout_row("b", 2, {"score": 0.0, "acc": 0.0})] * 2 + [rollout_row("b", 2, {"acc": 0.0, "unjudged": 1.0, "reason": "worker_died"})]
            + [rollout_row("c", 1, {"acc": 0.0, "unjudged": 1.0, "reason": "no_verifier: none"})] * 2
            + [rollout_row(None, 1, {"acc": 1.0})])
    table = pass_rates(pa.Table.from_pylist(rows, schema=ROLLOUT_SCHEMA), PROV, stage="stage1", backend="trl")
    got = {r["id"]: r for r in table.to_pylist()}
    assert sorted(got) == ["a", "b", "c"]  # the id-less rollout is left out
    assert (got["a"]["pass_rate"], got["a"]["n"], got["a"]["passes"], got["a"]["step_first"], got["a"]["step_last"]) == (0.75, 4, 3, 1, 2)
    assert got["a"]["response_tokens_mean"] == 6.0 and got["a"]["run_steps"] == "1-2" and got["a"]["stage"] == "stage1"
    assert (got["b"]["pass_rate"], got["b"]["n"], got["b"]["attempts"]) == (0.0, 2, 3)  # the unjudged attempt counts neither way
    assert got["c"]["pass_rate"] is None and got["c"]["error"] == "unjudged" and got["c"]["error_detail"] == "no_verifier: none"
    assert all(r[k] == v for r in got.values() for k, v in PROV.items())

    path = write_pass_rates(table, tmp_path / "pass_rates.parquet")
    loaded = load_scores("pass_rate@grpo", ScoreSource(path=str(path)))
    assert loaded.provenance == PROV
    assert {i: (r["pass_rate"], r["n"], r["stratum"]) for i, r in loaded.rows.items()} == {
        "a": (0.75, 4, "scored"), "b": (0.0, 2, "scored"), "c": (None, None, "error")}


def test_rollout_log_resume_drops_later_steps(tmp_path):
    folder = tmp_path / "rollouts"
    log = RolloutLog(folder)
    for step in range(3):  # TRL's global_step before each generation round
        log.record(SimpleNamespace(global_step=step), [{"id": f"s{step}"}, {"id": "x"}], [{"acc": 1.0, "score": 1.0}] * 2, [[1, 2], [3]])
    partial_path(folder / "step-0000003-0.parquet").write_bytes(b"half a file")  # a write interrupted by the crash
    assert sorted(read_rollouts(folder).column("step").to_pylist()) == [1, 1, 2, 2, 3, 3]
    assert read_rollouts(folder).column("response_tokens").to_pylist()[:2] == [2, 1]

    RolloutLog(folder, resume_step=2)  # resumed from checkpoint-2: step 3 is generated again
    assert sorted(read_rollouts(folder).column("step").to_pylist()) == [1, 1, 2, 2]
    assert sorted(p.name for p in folder.iterdir()) == ["step-0000001-0.parquet", "step-0000002-0.parquet"]
    RolloutLog(folder)  # a fresh run in the same output_dir
    assert read_rollouts(folder).num_rows == 0
    with pytest.raises(ValueError, match="trainer state"):
        log.record(None, [{"id": "a"}], [{"acc": 1.0}])


def test_reward_function_feeds_the_log(tmp_path):
    from rl.grpo.trl_reward import VerlRewardFunction
    from rl.reward import compute_score

    fn = VerlRewardFunction(compute_score)
    log = RolloutLog(tmp_path / "rollouts")
    fn.on_scored = log.record
    info = {"index": 0, "id": "c-1", "task": "counting", "verifier": "numeric", "verifier_params": "{}"}
    fn(prompts=[None] * 2, completions=["\\boxed{3}", "\\boxed{4}"], data_source=["d"] * 2,
       reward_model=[{"ground_truth": "3"}] * 2, extra_info=[info] * 2, trainer_state=SimpleNamespace(global_step=4, max_steps=10),
       completion_ids=[[1, 2, 3], [4]])
    rows = read_rollouts(tmp_path / "rollouts").to_pylist()
    assert [(r["id"], r["step"], r["passed"], r["response_tokens"]) for r in rows] == [("c-1", 5, True, 3), ("c-1", 5, False, 1)]
    assert compute_score("d", "3", "3", info)["sample_id"] == "c-1"
    assert compute_score("d", "3", "3", {"verifier": "numeric"})["sample_id"] is None


# ----- verl: the rollout dump -----

def _verl_data(tmp_path: Path) -> Path:
    from engine.data.formats.verl import write_verl
    from engine.data.sample import ImageRef, Message, Sample

    samples = [Sample(f"v-{i}", [ImageRef(_png())], [Message("user", "<image>How many circles?")], str(i + 2), "counting", "count")
               for i in range(3)]
    path = tmp_path / "train.parquet"
    write_verl(samples, path)
    return path


def _verl_dump(data: Path, dump: Path, step: int, responses: dict[str, list[str]], foreign: bool = False) -> list[dict]:
    """One training step's dump, written by verl's own writer and fed as verl feeds it: compute_score per
    response (NaiveRewardManager.run_single), reward_extra_info stacked into arrays per key (agent loop),
    `.tolist()` (_log_rollout_data), `_write_generations` (`<step>.jsonl`)."""
    import numpy as np
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer

    from rl.reward import compute_score

    rows = {r["extra_info"]["id"]: r for r in pq.read_table(data).to_pylist()}
    infos, inputs, outputs, gts = [], [], [], []
    for sid, texts in responses.items():
        row = rows[sid]
        extra = {k: v for k, v in row["extra_info"].items() if not (foreign and k == "id")}
        for text in texts:
            infos.append(compute_score(row["data_source"], text, row["reward_model"]["ground_truth"], dict(extra, num_turns=1)))
            inputs.append("user\nHow many circles?")
            outputs.append(text)
            gts.append(row["reward_model"]["ground_truth"])
    extra_infos = {k: np.array([i[k] for i in infos]) for k in infos[0]}
    RayPPOTrainer._write_generations(inputs, outputs, gts, [i["score"] for i in infos],
                                     {k: v.tolist() for k, v in extra_infos.items()}, str(dump), step)
    return infos


def test_verl_dump_converts_to_pass_rates(tmp_path, capsys):
    """A format test: the converter reads what verl 0.9.1's writer writes (no verl training here)."""
    from pipelines.cli import main

    data = _verl_data(tmp_path)
    dump = tmp_path / "run" / "rollouts"
    first = _verl_dump(data, dump, 1, {"v-0": ["\\boxed{2}", "\\boxed{5}"], "v-1": ["\\boxed{3}", "\\boxed{3}"]})
    _verl_dump(data, dump, 2, {"v-0": ["\\boxed{2}", "\\boxed{2}"], "v-2": ["\\boxed{0}", "\\boxed{1}"]})
    assert sorted(p.name for p in dump.iterdir()) == ["1.jsonl", "2.jsonl"]
    line = json.loads((dump / "1.jsonl").read_text().splitlines()[0])
    assert line["sample_id"] == "v-0" and line["step"] == 1 and line["output"] == "\\boxed{2}" and line["acc"] == first[0]["acc"] == 1.0
    (tmp_path / "run" / "verl_run.json").write_text(json.dumps({"model_id": "org/qwen-vl", "config_hash": "h1", "seed": 3,
                                                                "gradus_version": "0.1.0"}))

    out = tmp_path / "pass_rates.parquet"
    capsys.readouterr()  # verl's writer prints "Dumped generations to ..."
    assert main(["data", "pass-rates", "--rollouts", str(dump), "--output", str(out), "--data", str(data)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ids"] == 3 and summary["rollouts"] == 8 and summary["steps"] == "1-2" and summary["rollouts_without_id"] == 0
    got = {r["id"]: r for r in pq.read_table(out).to_pylist()}
    assert {i: (r["pass_rate"], r["n"], r["step_first"], r["step_last"]) for i, r in got.items()} == {
        "v-0": (0.75, 4, 1, 2), "v-1": (1.0, 2, 1, 1), "v-2": (0.0, 2, 2, 2)}
    r = got["v-0"]
    assert (r["model_id"], r["config_hash"], r["seed"], r["backend"], r["stage"]) == ("org/qwen-vl", "h1", 3, "verl", "run")
    assert r["response_tokens_mean"] is None  # verl dumps decoded text, not token counts
    assert load_scores("pass_rate@grpo", ScoreSource(path=str(out))).rows["v-0"]["pass_rate"] == 0.75

    other = tmp_path / "other.parquet"  # a data file the run did not train on
    pq.write_table(pa.table({"extra_info": [{"index": 0, "id": "zzz"}]}), other)
    assert main(["data", "pass-rates", "--rollouts", str(dump), "--output", str(out), "--data", str(other)]) == 2
    assert "are not in" in capsys.readouterr().err


def test_verl_dump_without_sample_id_is_refused(tmp_path):
    from rl.grpo.rollout_log import read_verl_dump, verl_pass_rates

    data = _verl_data(tmp_path)
    dump = tmp_path / "rollouts"
    _verl_dump(data, dump, 1, {"v-0": ["\\boxed{2}"]}, foreign=True)  # a row without a gradus id: sample_id null
    assert read_verl_dump(dump).column("id").to_pylist() == [None]
    lines = [json.loads(x) for x in (dump / "1.jsonl").read_text().splitlines()]
    (dump / "1.jsonl").write_text("".join(json.dumps({k: v for k, v in x.items() if k != "sample_id"}) + "\n" for x in lines))
    with pytest.raises(ConfigError, match="sample_id"):
        verl_pass_rates(str(dump), str(tmp_path / "p.parquet"), model_id="m")  # e.g. a custom reward entrypoint
    with pytest.raises(ConfigError, match="model id"):
        verl_pass_rates(str(dump), str(tmp_path / "p.parquet"))


def test_verl_overrides_carry_rollout_data_dir(tmp_path):
    from rl.grpo.config import GrpoJobConfig
    from rl.grpo.verl_launch import verl_overrides

    example = REPO / "configs" / "grpo" / "qwen2_5_vl_7b_verl.yaml"
    cfg = load_config(GrpoJobConfig, example, [f"output_dir={tmp_path / 'run'}"])
    assert f"trainer.rollout_data_dir='{tmp_path / 'run' / 'rollouts'}'" in verl_overrides(cfg, "/d/t.parquet", "")
    cfg = load_config(GrpoJobConfig, example, ["verl.rollout_data_dir=''"])
    assert not any(o.startswith("trainer.rollout_data_dir") for o in verl_overrides(cfg, "/d/t.parquet", ""))


# ----- TRL: a tiny run, then store and select -----

PISM_COLUMNS = {"id": pa.string(), "lambda_star": pa.float64(), "bucket": pa.string(), "unsolved": pa.bool_(), "generations": pa.int64(),
                "error": pa.string(), "error_detail": pa.string(), "model_id": pa.string(), "config_hash": pa.string(),
                "seed": pa.int64(), "gradus_version": pa.string()}


@pytest.fixture(scope="module")
def refreshed_run(tmp_path_factory, warm_model, warm_corpus):
    """1 step with a checkpoint, a planted part for a step 2 that 'crashed', then resumed to 2 steps.
    A spy on GRPOTrainer records which prompts each generation round was for (TRL's own inputs)."""
    from trl import GRPOTrainer

    from rl.grpo.config import GrpoJobConfig
    from rl.grpo.trl_backend import run_trl_grpo

    tmp = tmp_path_factory.mktemp("refresh")
    seen: list[tuple[int, list[str]]] = []
    original = GRPOTrainer._generate_and_score_completions

    def spy(self, inputs):
        seen.append((self.state.global_step + 1, [x["extra_info"]["id"] for x in inputs]))
        return original(self, inputs)

    def cfg(steps: int):
        return load_config(GrpoJobConfig, REPO / "configs" / "grpo" / "tiny_trl.yaml", [
            f"model_path={warm_model}", f"output_dir={tmp / 'run'}", f"data.train={warm_corpus / 'train'}?tasks=color,spatial&per_task=2",
            f"algorithm.steps={steps}", "algorithm.prompts_per_step=2", "algorithm.group_size=4", "trl.save_every=1", "wandb.mode=disabled"])

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(GRPOTrainer, "_generate_and_score_completions", spy)
        first = run_trl_grpo(cfg(1))
        planted = tmp / "run" / "rollouts" / "step-0000002-0.parquet"
        pq.write_table(pa.Table.from_pylist([rollout_row("planted", 2, {"acc": 1.0})], schema=ROLLOUT_SCHEMA), planted)
        summary = run_trl_grpo(cfg(2))
    return SimpleNamespace(out=tmp / "run", tmp=tmp, first=first, summary=summary, seen=seen)


@pytest.mark.slow
def test_trl_run_writes_pass_rates_of_what_it_trained_on(refreshed_run):
    run = refreshed_run
    assert run.summary["resumed_from"].endswith("checkpoint-1")
    assert [step for step, _ in run.seen] == [1, 2]
    trained = Counter(sid for _, ids in run.seen for sid in ids)
    rates = {r["id"]: r for r in pq.read_table(run.out / "pass_rates.parquet").to_pylist()}
    assert set(rates) == set(trained) and "planted" not in rates  # exactly the prompts generated for; the crashed step's rows gone
    for sid, r in rates.items():
        assert r["n"] == r["attempts"] == trained[sid] and trained[sid] % 4 == 0  # group_size x times seen
        assert r["pass_rate"] == pytest.approx(r["passes"] / r["n"])
        assert (r["model_id"], r["seed"], r["stage"], r["backend"], r["run_steps"]) == ("gradus/tiny-qwen2.5-vl", 0, "run", "trl", "1-2")
        assert r["config_hash"] == run.summary["config_hash"] and r["gradus_version"] == run.summary["gradus_version"]
    rollouts = read_rollouts(run.out / "rollouts").to_pylist()
    assert len(rollouts) == 2 * 2 * 4 and all(r["response_tokens"] and r["error"] is None for r in rollouts)
    metrics = [json.loads(line) for line in (run.out / "metrics.jsonl").read_text().splitlines()]
    for m in metrics:  # TRL's logged acc of a step is the mean verdict of that step's rollouts
        step_rows = [r for r in rollouts if r["step"] == m["step"]]
        assert sorted(r["id"] for r in step_rows) == sorted(dict(run.seen)[m["step"]])
        assert m["acc"] == pytest.approx(sum(r["acc"] for r in step_rows) / len(step_rows), abs=1e-4)
    s = run.summary["pass_rates"]
    assert run.summary["files"]["pass_rates"] == str(run.out / "pass_rates.parquet") == s["file"]
    assert (s["ids"], s["rollouts"], s["rollouts_without_id"], s["steps"]) == (len(trained), 16, 0, "1-2")
    assert s["pass_rate_mean"] == pytest.approx(sum(r["pass_rate"] for r in rates.values()) / len(rates), abs=1e-6)
    assert json.loads((run.out / "summary.json").read_text())["pass_rates"] == s


@pytest.mark.slow
def test_store_and_select_use_the_refreshed_pass_rates(refreshed_run, warm_corpus, capsys):
    from pipelines.cli import main
    from engine.data.shards import read_table
    from engine.shaping.select import SelectionSpec
    from pipelines.shaping.select import SelectJobConfig, run_select
    from engine.shaping.store import read_manifest, read_store
    from rl.sources import resolve_data

    tmp, out = refreshed_run.tmp, refreshed_run.out
    # the store's samples: 4 per task of the same tasks, so 4 samples were never trained on
    samples = resolve_data(f"{warm_corpus / 'train'}?tasks=color,spatial&per_task=4", tmp, "store")
    ids = sorted(read_table(samples).column("id").to_pylist())
    pism = [{"id": sid, "lambda_star": 0.5, "bucket": "mid", "unsolved": False, "generations": 12, "error": None, "error_detail": None,
             "model_id": "gradus/tiny-qwen2.5-vl", "config_hash": "pism-1", "seed": 0, "gradus_version": "0.1.0"} for sid in ids]
    pq.write_table(pa.Table.from_pylist(pism, schema=pa.schema(PISM_COLUMNS)), tmp / "pism.parquet")
    store = tmp / "store"
    assert main(["store", "build", f"samples={samples}", f"output={store}", f"sources.pism.path={tmp / 'pism.parquet'}"]) == 0
    assert main(["store", "build", f"output={store}", f"sources.pass_rate@grpo.path={out / 'pass_rates.parquet'}"]) == 0
    capsys.readouterr()

    manifest = read_manifest(store)
    assert manifest["sources"]["pism"]["status"] == "carried" and manifest["sources"]["pass_rate@grpo"]["status"] == "added"
    assert {"pism.lambda_star", "pass_rate@grpo.pass_rate", "pass_rate@grpo.n", "pass_rate@grpo.model_id"} <= set(manifest["columns"])
    assert manifest["sources"]["pass_rate@grpo"]["provenance"]["config_hash"] == refreshed_run.summary["config_hash"]
    rates = {r["id"]: r for r in pq.read_table(out / "pass_rates.parquet").to_pylist()}
    table = read_store(store, columns=["id", "pism.bucket", "pass_rate@grpo.pass_rate", "pass_rate@grpo.n", "pass_rate@grpo.stratum"])
    for row in table.to_pylist():
        assert row["pism.bucket"] == "mid"
        if row["id"] in rates:
            assert (row["pass_rate@grpo.pass_rate"], row["pass_rate@grpo.n"], row["pass_rate@grpo.stratum"]) == (
                rates[row["id"]]["pass_rate"], rates[row["id"]]["n"], "scored")
        else:
            assert row["pass_rate@grpo.stratum"] == "unscored" and row["pass_rate@grpo.pass_rate"] is None
    assert len(rates) < len(ids) and set(rates) <= set(ids)

    values = sorted({r["pass_rate"] for r in rates.values()})
    cut = values[-1]  # a band edge the data splits at (unless every trained sample has one pass rate)
    cfg = SelectJobConfig(store=str(store), output=str(tmp / "select"), metric="pism", selections={
        "low": SelectionSpec("range", metric="pass_rate@grpo", high=cut, high_inclusive=False),
        "high": SelectionSpec("range", metric="pass_rate@grpo", low=cut)})
    record = run_select(cfg)
    selected = {name: sorted(read_table(tmp / "select" / "selections" / name).column("id").to_pylist())
                if record["selections"][name]["count"] else [] for name in ("low", "high")}
    assert selected["low"] == sorted(i for i, r in rates.items() if r["pass_rate"] < cut)
    assert selected["high"] == sorted(i for i, r in rates.items() if r["pass_rate"] >= cut)
    assert selected["high"] and (selected["low"] or len(values) == 1)  # never-trained samples (no pass rate) are in neither band
    shard = read_table(tmp / "select" / "selections" / "high").to_pylist()[0]
    assert json.loads(shard["meta"])["difficulty"]["metrics"]["pass_rate@grpo"]["pass_rate"] == rates[shard["id"]]["pass_rate"]
