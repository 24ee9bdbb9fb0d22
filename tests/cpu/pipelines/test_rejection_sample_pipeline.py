"""Rejection-sampling SFT data on Ray Data with the warm model (HF backend): every kept response is
one its item's verifier accepts, distinct and capped per item; the written shards load as canonical
samples and rl/sft's collator trains exactly on the kept response with the pass-through template."""
import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.config import ConfigError, from_dict
from engine.data.images import ImagePolicy
from engine.data.sample import SAMPLE_SCHEMA, validate_sample
from engine.data.shards import iter_samples, shard_paths
from engine.generation.base import GenerationConfig
from engine.tracking import WandbConfig
from engine.verifiers import verify
from pipelines.generate import ActorPoolConfig
from pipelines.rejection_sample import SFT_RESPONSE_TEMPLATE, RejectionSampleConfig, run_rejection_sample
from rl.sft.collate import IGNORE_INDEX, build_batch
from rl.sft.config import SFTConfig


def test_greedy_draws_are_a_config_error():
    with pytest.raises(ConfigError, match="temperature 0"):
        from_dict(RejectionSampleConfig, {"n": 8, "generation": {"temperature": 0.0}})


@pytest.mark.slow
def test_rejection_sampling_keeps_verified_responses_as_sft_shards(ray_session, warm_model, warm_corpus, tmp_path):
    rows = []
    for path in shard_paths(warm_corpus / "train"):
        rows += pq.read_table(path).to_pylist()
    picked = rows[::250][:12]  # spread over the families
    picked[2]["images"] = [{"bytes": b"not an image", "path": None}]
    src = tmp_path / "in"
    src.mkdir()
    for i in range(0, len(picked), 4):
        pq.write_table(pa.Table.from_pylist(picked[i : i + 4], schema=SAMPLE_SCHEMA), src / f"part-{i:05d}.parquet")
    by_id = {r["id"]: r for r in picked}

    cfg = RejectionSampleConfig(input=str(src), output=str(tmp_path / "rs"), model_path=str(warm_model), n=4, keep_per_item=2, seed=0,
                                generation=GenerationConfig(backend="hf", temperature=1.0, max_new_tokens=24),
                                actors=ActorPoolConfig(num_cpus=1, batch_size=4, omp_threads=2), rows_per_block=4, rows_per_shard=5,
                                wandb=WandbConfig(mode="offline"))
    cfg.validate()
    summary = run_rejection_sample(cfg)

    out = tmp_path / "rs"
    scores = pd.read_parquet(out / "scores.parquet")
    assert list(pd.read_parquet(out / "quarantine.parquet")["error"]) == ["image_corrupt"]
    assert summary["quarantined"] == {"image_corrupt": 1} and summary["items"] == 12 and summary["sampled"] == 11
    assert scores["error"].isna().all() and (scores["n"] == 4).all()
    assert summary["kept"] > 0 and summary["kept"] == int(scores["kept"].map(len).sum())
    assert summary["dropped_none_correct"] == int((scores["c"] == 0).sum())
    for task, v in summary["per_task"].items():
        g = scores[scores["task"] == task]
        assert v["items"] == len(g) and v["kept"] == int(g["kept"].map(len).sum())
        assert v["yield"] == pytest.approx(float((g["kept"].map(len) > 0).mean()), abs=1e-4)

    expected = {}
    for row in scores.itertuples():
        kept = list(row.kept)
        assert len(kept) <= 2 and len(set(kept)) == len(kept)
        assert len(kept) <= row.c and all(row.draws_passed[d] for d in row.kept_draws)
        s = by_id[row.id]
        for draw, text in zip(row.kept_draws, kept):  # every kept response verifies against the ground truth
            assert verify(s["verifier"], text, s["answer"], json.loads(s["verifier_params"] or "{}")).passed
            expected[f"{row.id}-rs{draw}"] = text

    samples = list(iter_samples(summary["shards"]))
    assert {s.id: s.answer for s in samples} == expected and len(samples) == summary["shard_rows"]
    assert len(shard_paths(summary["shards"])) == -(-len(samples) // 5)
    policy = ImagePolicy()
    for s in samples:  # canonical samples: the kept response is the assistant turn and the SFT target
        validate_sample(s, policy)
        info = s.meta["rejection_sampling"]
        src_row = by_id[info["source_id"]]
        assert s.messages[-1].role == "assistant" and s.messages[-1].content == s.answer
        assert info["ground_truth"] == src_row["answer"] and s.task == src_row["task"] and s.images[0].bytes == src_row["images"][0]["bytes"]
        assert info["response_template"] == SFT_RESPONSE_TEMPLATE and info["config_hash"] == summary["config_hash"]

    # rl/sft as it is trains on exactly the kept response (+ end of turn) with the pass-through template.
    from transformers import AutoProcessor

    SFTConfig(model_path=str(warm_model), train_data=summary["shards"], response_template=summary["sft"]["response_template"]).validate()
    processor = AutoProcessor.from_pretrained(warm_model, local_files_only=True)
    batch = build_batch(samples, processor, summary["sft"]["response_template"])
    for row, s in enumerate(samples):
        target = batch["labels"][row][batch["labels"][row] != IGNORE_INDEX]
        assert processor.tokenizer.decode(target) == s.answer + processor.tokenizer.eos_token

    assert (out / "yield_per_task.png").exists() and (out / "report.html").read_text().count("data:image/png;base64,") == 1
    assert json.loads((out / "summary.json").read_text())["kept"] == summary["kept"]


def test_on_vllm_the_draws_run_on_ray_data_llm_unless_asked_otherwise():
    from pipelines.llm_batch import resolve_runner

    cfg = RejectionSampleConfig()
    cfg.validate()
    assert cfg.generation.backend == "vllm" and resolve_runner(cfg.runner, cfg.generation.backend) == "ray_data_llm"
    assert resolve_runner("auto", "hf") == "actor" and resolve_runner("actor", "vllm") == "actor"
    with pytest.raises(ConfigError, match="needs generation.backend=vllm"):
        from_dict(RejectionSampleConfig, {"runner": "ray_data_llm", "generation": {"backend": "hf", "temperature": 1.0}})


@pytest.mark.slow
def test_rejection_sampling_on_ray_data_llm_keeps_what_the_actor_runner_keeps(ray_session, warm_model, warm_corpus, tmp_path):
    """The same seeds on vLLM through ray.data.llm (the default) and through the actor pool: the same
    draws, verdicts and kept responses per item, the same quarantine and the same SFT shards."""
    from pipeline_inputs import spread_rows, write_small_files

    picked = spread_rows(warm_corpus, 8)
    picked[3]["images"] = [{"bytes": b"not an image", "path": None}]
    (tmp_path / "in").mkdir()
    src = write_small_files(picked, tmp_path / "in", 4)
    got = {}
    for runner in ("auto", "actor"):
        cfg = RejectionSampleConfig(input=str(src), output=str(tmp_path / runner), model_path=str(warm_model), n=4, keep_per_item=2, seed=0,
                                    generation=GenerationConfig(backend="vllm", temperature=1.0, max_new_tokens=16), runner=runner,
                                    actors=ActorPoolConfig(num_cpus=1, batch_size=4, omp_threads=1), rows_per_block=4, rows_per_shard=5,
                                    wandb=WandbConfig(mode="disabled"))
        summary = run_rejection_sample(cfg)
        scores = pd.read_parquet(tmp_path / runner / "scores.parquet").sort_values("id").reset_index(drop=True)
        shards = sorted((s.id, s.answer, s.meta["rejection_sampling"]["draw"]) for s in iter_samples(summary["shards"]))
        got[runner] = (summary, scores, shards)
    (s_rdl, rdl, shards_rdl), (s_act, act, shards_act) = got["auto"], got["actor"]
    columns = ["id", "n", "c", "kept", "kept_draws", "draws_passed", "tokens", "duplicates", "truncated", "over_limit", "untrainable", "error"]
    assert rdl[columns].astype(str).equals(act[columns].astype(str))
    assert s_rdl["quarantined"] == s_act["quarantined"] == {"image_corrupt": 1}
    assert s_rdl["kept"] == s_act["kept"] > 0 and shards_rdl == shards_act
    assert s_rdl["filtered"] == s_act["filtered"] and s_rdl["config_hash"] == s_act["config_hash"]
