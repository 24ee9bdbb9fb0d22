"""Curriculum stages as one job (rl/curriculum) and SFT as a recipe (rl/train_sft.py), on CPU.

What this proves:
- a 2-stage curriculum on the warm-started tiny model, SFT through Ray Train on two CPU workers
  (DDP over gloo) then GRPO through TRL, hands the checkpoint over: stage 2 starts from stage 1's
  final HF folder (input_model, gradus_model.json parent chain) and its weights differ from it;
- the SFT stage's loss criterion stops it early (averaged over both workers) and the stop is
  recorded; a GRPO reward criterion stops the GRPO stage through a TrainerCallback;
- rerunning the same command is a no-op (both stages skipped); changing stage 2's overrides reruns
  stage 2 only; a stage folder of another config is cleared before the stage runs;
- a verl-backend curriculum dry-run gives per-stage override sets that compose in verl's own config,
  stage i's actor = stage i-1's merged model folder;
- `reformulate:<stage>:<source>` data is made once inside the job; rejection-sampled shards with a
  wrapping template are refused; DeepSpeed configs pass DeepSpeed's own parser;
- bad configs are ConfigErrors that name the stage, before anything trains.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.config import ConfigError, from_dict, load_config
from rl.curriculum.config import CurriculumConfig

REPO = Path(__file__).resolve().parents[3]
SFT_TINY = "configs/sft/tiny.yaml"
GRPO_TINY = "configs/grpo/tiny_trl.yaml"
GRPO_VERL = "configs/grpo/qwen2_5_vl_7b_verl.yaml"


def _curriculum(out: Path, model: Path | str, stages: list[dict], **extra) -> CurriculumConfig:
    return from_dict(CurriculumConfig, {"model_path": str(model), "output_dir": str(out), "seed": 0, "stages": stages,
                                        "wandb": {"mode": "disabled"}, **extra})


@pytest.mark.parametrize("stages, message", [
    ([], "stages` is empty"),
    ([{"name": "a", "kind": "dpo", "config": GRPO_TINY}], "kind 'dpo' not in"),
    ([{"name": "a", "kind": "grpo", "config": "configs/grpo/nope.yaml"}], "recipe config configs/grpo/nope.yaml not found"),
    ([{"name": "a", "kind": "grpo"}], "`config`"),
    ([{"name": "a", "config": GRPO_TINY}, {"name": "a", "config": GRPO_TINY}], "unique"),
    ([{"name": "bad name", "config": GRPO_TINY}], "stage name"),
    ([{"name": "a", "config": GRPO_TINY, "overrides": ["model_path=/x"]}], "set by the curriculum"),
    ([{"name": "a", "kind": "sft", "config": SFT_TINY, "stop": {"reward_at_least": 0.5}}], "applies to grpo stages"),
    ([{"name": "a", "kind": "grpo", "config": GRPO_TINY, "stop": {"loss_at_most": 0.5}}], "applies to sft stages"),
])
def test_bad_configs_are_config_errors(tmp_path, stages, message):
    with pytest.raises(ConfigError, match=message):
        _curriculum(tmp_path, "/nonexistent", stages)


@pytest.mark.parametrize("stage, message", [
    ({"name": "g", "kind": "grpo", "config": GRPO_TINY, "overrides": ["algorithm.stepz=3"]}, r"stage 'g' \(grpo.*unknown key"),
    ({"name": "s", "kind": "sft", "config": GRPO_TINY}, r"stage 's' \(sft.*unknown key"),  # a GRPO recipe under an sft stage
    ({"name": "v", "kind": "grpo", "config": GRPO_VERL}, "verl.address is set"),
    ({"name": "v", "kind": "grpo", "config": GRPO_VERL, "overrides": ["verl.address="], "stop": {"reward_at_least": 0.5}}, "needs the trl backend"),
    ({"name": "v", "kind": "grpo", "config": GRPO_VERL, "overrides": ["verl.address=", "verl.save_freq=0"]}, "save_freq must be > 0"),
])
def test_stage_recipe_errors_name_the_stage_before_training(tmp_path, stage, message):
    from rl.curriculum.run import run_curriculum

    cfg = _curriculum(tmp_path / "c", "/nonexistent/model", [{"name": "ok", "kind": "grpo", "config": GRPO_TINY}, stage])
    with pytest.raises(ConfigError, match=message):
        run_curriculum(cfg)  # stage 2's recipe is checked before stage 1 (or the start model) is touched
    assert not (tmp_path / "c" / "curriculum.json").exists()


def test_example_configs_load():
    for name in ("tiny_sft_grpo", "curr_reft_tiny", "qwen2_5_vl_7b_sft_grpo"):
        cfg = load_config(CurriculumConfig, REPO / "configs" / "curriculum" / f"{name}.yaml")
        assert cfg.stages and cfg.model_path and cfg.output_dir
    from rl.sft.config import SFTConfig

    assert load_config(SFTConfig, REPO / "configs" / "sft" / "qwen2_5_vl_7b_zero3.yaml").uses_deepspeed
    assert not load_config(SFTConfig, REPO / SFT_TINY).uses_deepspeed


def test_stop_rules():
    from types import SimpleNamespace

    from rl.curriculum.stops import reward_stop_callback, window_mean
    from rl.sft.ray_train import LossStop

    assert window_mean([1.0, 2.0], 3) is None and window_mean([5.0, 1.0, 2.0, 3.0], 3) == 2.0
    stop = LossStop(0.5, 2)
    assert [stop.update(x) for x in (0.2, 0.9, 0.3, 0.4)] == [False, False, False, True]
    assert not LossStop(0.0, 1).update(0.0)  # 0: off

    cb = reward_stop_callback(0.5, 2)
    control = SimpleNamespace(should_training_stop=False)
    for step, reward in enumerate([0.1, 0.6, 0.3, 0.8], start=1):
        cb.on_log(None, SimpleNamespace(global_step=step, max_steps=10), control, logs={"reward": reward, "loss": 0.0})
        if control.should_training_stop:
            break
    assert control.should_training_stop and cb.result == {"stopped_early": True, "step": 4, "reason": cb.result["reason"]}
    assert "0.5500" in cb.result["reason"]
    cb.on_log(None, SimpleNamespace(global_step=5, max_steps=10), control, logs={"train_runtime": 1.0})  # not a step log


def test_deepspeed_configs_pass_deepspeeds_parser(tmp_path):
    from rl.sft.config import SFTConfig, SFTDeepSpeed
    from rl.sft.ray_train import deepspeed_config, validate_deepspeed

    for ds in (SFTDeepSpeed(enabled=True, zero_stage=2, offload_optimizer=True),
               SFTDeepSpeed(enabled=True, zero_stage=3, offload_param=True, dtype="float16"), SFTDeepSpeed(enabled=True, zero_stage=0)):
        config = deepspeed_config(SFTConfig(use_gpu=True, batch_size=4, deepspeed=ds))
        validate_deepspeed(config)
        assert config["zero_optimization"]["stage"] == ds.zero_stage and config["train_micro_batch_size_per_gpu"] == 4
    extra = tmp_path / "ds.json"
    extra.write_text(json.dumps({"zero_optimization": {"stage3_prefetch_bucket_size": 1000}}))
    merged = deepspeed_config(SFTConfig(use_gpu=True, deepspeed=SFTDeepSpeed(enabled=True, zero_stage=3, config=str(extra))))
    assert merged["zero_optimization"]["stage3_prefetch_bucket_size"] == 1000 and merged["zero_optimization"]["stage"] == 3
    validate_deepspeed(merged)
    extra.write_text(json.dumps({"zero_optimization": {"no_such_key": 1}}))
    with pytest.raises(ConfigError, match="DeepSpeed rejects"):
        validate_deepspeed(deepspeed_config(SFTConfig(use_gpu=True, deepspeed=SFTDeepSpeed(enabled=True, config=str(extra)))))
    with pytest.raises(ConfigError, match="offload_param needs zero_stage 3"):
        load_config(SFTConfig, REPO / SFT_TINY, ["deepspeed.offload_param=true"])
    assert not load_config(SFTConfig, REPO / SFT_TINY, ["deepspeed.enabled=true"]).uses_deepspeed  # CPU workers: DDP


@pytest.mark.slow
def test_reformulate_data_is_made_once_in_the_job(tmp_path, warm_corpus):
    from engine.data.shards import iter_samples
    from rl.curriculum.data import resolve_stage_data

    source = f"{warm_corpus / 'train'}?tasks=color,counting&per_task=4"
    judge = Path(resolve_stage_data(f"reformulate:judge:{source}", tmp_path, seed=0))
    choice = Path(resolve_stage_data(f"reformulate:choice:{source}", tmp_path, seed=0))
    assert judge.parent.parent == choice.parent.parent and judge.name == "train"  # one reformulation run, one split
    stamp = (judge.parent.parent / "summary.json").stat().st_mtime_ns
    assert Path(resolve_stage_data(f"reformulate:judge:{source}", tmp_path, seed=0)) == judge
    assert (judge.parent.parent / "summary.json").stat().st_mtime_ns == stamp  # not made again
    rows = list(iter_samples(judge))
    assert len(rows) == 8 and {r.meta["curr_reft"]["stage"] for r in rows} == {"judge"}
    assert {r.verifier for r in rows} == {"yesno"}
    from itertools import islice

    from engine.data.shards import write_shards

    for split in ("train", "test"):  # a source holding two splits: which one to train on is not guessed
        write_shards(list(islice((s for s in iter_samples(warm_corpus / split) if s.task == "color"), 2)), tmp_path / "two" / split)
    with pytest.raises(ConfigError, match="one split"):
        resolve_stage_data(f"reformulate:open:{tmp_path / 'two'}", tmp_path, seed=0)
    with pytest.raises(ConfigError, match="reformulate:<stage>:<source>"):
        resolve_stage_data(f"reformulate:hard:{source}", tmp_path, seed=0)


@pytest.mark.slow
def test_rejection_sampled_shards_need_the_passthrough_template(tmp_path, warm_model, warm_corpus):
    import dataclasses

    from engine.data.shards import iter_samples, write_shards
    from rl.sft.config import SFTConfig
    from rl.train_sft import resolve

    sample = next(iter_samples(warm_corpus / "train"))
    rs = dataclasses.replace(sample, id="x-rs0", answer="\\boxed{3}", meta={**sample.meta, "rejection_sampling": {"draw": 0}})
    write_shards([rs], tmp_path / "rs")
    cfg = load_config(SFTConfig, REPO / SFT_TINY, [f"model_path={warm_model}", f"train_data={tmp_path / 'rs'}", f"output_dir={tmp_path / 'o'}"])
    with pytest.raises(ConfigError, match="response_template"):
        resolve(cfg)
    cfg.response_template = "{answer}"
    resolved, model_id, out = resolve(cfg)
    assert resolved.output_dir == str(out / "model") and model_id == "gradus/tiny-qwen2.5-vl"


@pytest.mark.slow
def test_verl_curriculum_dry_run_chains_merged_models(tmp_path, warm_corpus, tiny_random_model):
    from rl.curriculum.run import run_curriculum
    from rl.grpo.verl_launch import validate_overrides

    data = f"{warm_corpus / 'train'}?tasks=color&per_task=4"
    verl = ["verl.address=", "data.val="]
    cfg = _curriculum(tmp_path / "c", tiny_random_model, [
        {"name": "judge", "kind": "grpo", "config": GRPO_VERL, "data": data, "overrides": verl, "stop": {"max_steps": 7}},
        {"name": "sft", "kind": "sft", "config": SFT_TINY, "data": data},
        {"name": "open", "kind": "grpo", "config": GRPO_VERL, "data": data, "overrides": verl + ["algorithm.lr=2.0e-6"]},
    ])
    cfg.dry_run = True
    plan = run_curriculum(cfg)
    stages = plan["stages"]
    assert [s["name"] for s in stages] == ["judge", "sft", "open"]
    assert stages[0]["input_model"] == str(tiny_random_model)
    for prev, cur in zip(stages, stages[1:]):
        assert cur["input_model"] == prev["output_model"] == str(Path(prev["stage_dir"]) / "model")
    for s in (stages[0], stages[2]):
        overrides = s["verl"]["overrides"]
        config = validate_overrides(overrides)  # composes in verl's own config, read back, verl's validate_config
        assert config.actor_rollout_ref.model.path == s["input_model"]
        assert config.trainer.default_local_dir == str(Path(s["stage_dir"]) / "checkpoints")
        assert s["verl"]["merge_command"][-1] == s["output_model"] + ".partial"
        assert Path(s["verl"]["train_file"]).is_file()
    assert validate_overrides(stages[0]["verl"]["overrides"]).trainer.total_training_steps == 7  # stop.max_steps
    assert validate_overrides(stages[2]["verl"]["overrides"]).actor_rollout_ref.actor.optim.lr == 2e-6
    assert stages[1]["config"]["model_path"] == stages[0]["output_model"]
    assert plan["final_model"] == stages[2]["output_model"]
    assert not (tmp_path / "c" / "curriculum.json").exists()  # a dry run records nothing


@pytest.mark.slow
def test_two_stage_curriculum_hands_over_and_resumes_on_cpu(tmp_path, warm_model, warm_corpus):
    import torch
    from transformers import AutoModelForImageTextToText

    from rl.curriculum.run import run_curriculum

    out = tmp_path / "cur"
    sft = {"name": "sft-mid", "kind": "sft", "config": SFT_TINY,
           "data": f"{warm_corpus / 'train'}?tasks=counting,spatial&per_task=16",
           "overrides": ["batch_size=4", "num_workers=2", "log_every=1", "warmup_steps=0", "lr=1.0e-3"],
           "stop": {"max_steps": 4, "loss_at_most": 100.0, "window": 2}}  # any loss is <= 100: stops after 2 steps
    grpo = {"name": "grpo-color", "kind": "grpo", "config": GRPO_TINY, "data": f"{warm_corpus / 'train'}?tasks=color&per_task=8",
            "overrides": ["algorithm.prompts_per_step=2", "algorithm.group_size=4"], "stop": {"max_steps": 2}}

    first = run_curriculum(_curriculum(out, warm_model, [sft, grpo]))
    s1, s2 = first["stages"]
    assert not s1["skipped"] and not s2["skipped"] and first["stages_run"] == 2
    assert s1["input_model"] == str(warm_model)
    assert s2["input_model"] == s1["output_model"] == str(out / "stages" / "00-sft-mid" / "model")
    assert first["final_model"] == s2["output_model"] == str(out / "stages" / "01-grpo-color" / "model")
    # SFT: two Ray Train workers, stopped by the loss criterion after `window` steps, recorded
    assert s1["summary"]["parallelism"] == "ddp" and s1["summary"]["planned_steps"] == 4
    assert s1["summary"]["stop"] == s1["stop"] and s1["stop"]["stopped_early"] and s1["stop"]["step"] == 2
    assert "<= 100.0" in s1["stop"]["reason"] and s1["summary"]["steps"] == 2
    assert s2["summary"]["steps"] == 2 and not s2["stop"]["stopped_early"]
    # the parent chain: stage 2's model -> stage 1's model -> the warm model
    meta2 = json.loads((Path(s2["output_model"]) / "gradus_model.json").read_text())
    meta1 = json.loads((Path(s1["output_model"]) / "gradus_model.json").read_text())
    assert meta2["stage"] == "grpo" and meta2["parent"] == s1["output_model"]
    assert meta1["stage"] == "sft" and meta1["parent"] == str(warm_model)
    assert meta2["model_id"] == meta1["model_id"] == "gradus/tiny-qwen2.5-vl"
    assert meta2["curriculum"]["stage"] == "grpo-color" and meta2["curriculum"]["index"] == 1
    # the weights moved at each stage
    load = lambda p: dict(AutoModelForImageTextToText.from_pretrained(p, local_files_only=True).named_parameters())  # noqa: E731
    w0, w1, w2 = load(warm_model), load(s1["output_model"]), load(s2["output_model"])
    assert any(not torch.equal(w1[k], w0[k]) for k in w0)
    assert any(not torch.equal(w2[k], w1[k]) for k in w1)
    state = json.loads((out / "curriculum.json").read_text())
    hashes = {k: v["hash"] for k, v in state["stages"].items()}
    assert set(hashes) == {"00-sft-mid", "01-grpo-color"}

    # the same command again: nothing runs
    again = run_curriculum(_curriculum(out, warm_model, [sft, grpo]))
    assert [s["skipped"] for s in again["stages"]] == [True, True] and again["stages_run"] == 0
    assert again["final_model"] == first["final_model"] and again["wall_s"] < 30
    assert (Path(first["final_model"]) / "gradus_model.json").read_text() == json.dumps(meta2, indent=2, default=str) + "\n"

    # stage 2 changed (its overrides and a reward criterion that holds at once): only stage 2 runs
    grpo2 = {**grpo, "overrides": grpo["overrides"] + ["algorithm.lr=1.0e-4"], "stop": {"max_steps": 3, "reward_at_least": -1.0, "window": 1}}
    third = run_curriculum(_curriculum(out, warm_model, [sft, grpo2]))
    t1, t2 = third["stages"]
    assert t1["skipped"] and not t2["skipped"] and third["stages_run"] == 1
    assert t2["input_model"] == s1["output_model"]
    assert t2["stop"]["stopped_early"] and t2["stop"]["step"] == 1 and t2["summary"]["steps"] == 1
    assert ">= -1.0" in t2["stop"]["reason"]
    state3 = json.loads((out / "curriculum.json").read_text())
    assert state3["stages"]["00-sft-mid"]["hash"] == hashes["00-sft-mid"]
    assert state3["stages"]["01-grpo-color"]["hash"] != hashes["01-grpo-color"]
    assert not (out / "stages" / "01-grpo-color" / "model.partial").exists()
