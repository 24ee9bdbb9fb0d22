"""The single-machine GRPO backend (TRL GRPOTrainer) on CPU, on the real embedded default.

What this proves:
- the verl parquet gradus exports turns into TRL's conversational multimodal rows with the image
  placeholders where `<image>` stood, and TRL's trainer accepts them (real Qwen2.5-VL forward,
  generation and backward on CPU);
- rewards go through the verl reward entrypoint (rl/reward.py compute_score) with the configured
  RewardConfig: the adapter's scores equal compute_score's for the same completions, and the
  training log's reward is that entrypoint's score (acc/format logged beside it);
- 2 steps write metrics.jsonl (one line per step, with the group signal: informative share,
  zero-signal rollouts, mean |advantage|, consistent with TRL's frac_reward_zero_std and with the
  rollout log grouped by prompt), reward_curve.png, summary.json and an HF folder that
  transformers and gradus's HF backend load again;
- save_every > 0 leaves a checkpoint, and a rerun with more steps resumes from it;
- config errors (group_size 1, a bad device, a missing model) are ConfigErrors before training.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.config import ConfigError, load_config
from rl.grpo.config import GrpoJobConfig

REPO = Path(__file__).resolve().parents[3]
CONFIG = REPO / "configs" / "grpo" / "tiny_trl.yaml"


def _cfg(tmp_path: Path, model: Path, corpus: Path, *extra: str) -> GrpoJobConfig:
    return load_config(GrpoJobConfig, CONFIG, [
        f"model_path={model}",
        f"output_dir={tmp_path / 'run'}",
        f"data.train={corpus / 'train'}?tasks=color,spatial&per_task=8",
        "algorithm.steps=2",
        "algorithm.prompts_per_step=2",
        "algorithm.group_size=4",
        "wandb.mode=disabled",
        *extra,
    ])


def test_default_config_loads_and_maps():
    from rl.grpo.trl_backend import trl_args

    cfg = load_config(GrpoJobConfig, CONFIG)
    assert cfg.backend == "trl" and cfg.reward.config == "configs/reward/boxed.yaml"
    args = trl_args(cfg, Path("/tmp/unused"), "cpu")
    a = cfg.algorithm
    assert args.num_generations == a.group_size
    assert args.generation_batch_size == a.prompts_per_step * a.group_size
    assert args.per_device_train_batch_size * args.gradient_accumulation_steps == a.prompts_per_step * a.group_size
    assert args.max_steps == a.steps and args.learning_rate == a.lr and args.beta == a.kl_coef
    assert args.epsilon == a.clip_ratio and args.temperature == a.temperature and args.top_p == a.top_p
    assert args.max_completion_length == cfg.data.max_response_length and args.seed == cfg.seed


def test_mini_batches_map_to_several_updates_per_rollout():
    from rl.grpo.trl_backend import trl_args

    cfg = load_config(GrpoJobConfig, CONFIG, ["algorithm.prompts_per_step=8", "algorithm.mini_batch_prompts=4", "algorithm.steps=5"])
    args = trl_args(cfg, Path("/tmp/unused"), "cpu")
    assert args.generation_batch_size == 8 * cfg.algorithm.group_size
    assert args.per_device_train_batch_size == 4 * cfg.algorithm.group_size
    assert args.max_steps == 10  # 5 rollout rounds x 2 updates


@pytest.mark.parametrize("schedule, warmup, expected", [
    ("constant", 0.0, [1.0, 1.0, 1.0, 1.0]),
    ("constant", 0.2, [0.0, 1.0, 1.0, 1.0]),  # warmup then flat: transformers' "constant" alone would skip the warmup
    ("cosine", 0.2, [0.0, 1.0, 0.5, 0.0]),  # warmup, then half way down by the middle of the decay, 0 at the end
])
def test_lr_schedule_shapes_the_learning_rate(schedule, warmup, expected):
    """algorithm.lr_schedule / warmup_ratio reach the optimizer: the lr TRL's trainer would use, per step."""
    import torch
    from transformers import get_scheduler

    from rl.grpo.trl_backend import trl_args

    cfg = load_config(GrpoJobConfig, CONFIG, ["algorithm.steps=20", f"algorithm.lr_schedule={schedule}", f"algorithm.warmup_ratio={warmup}"])
    args = trl_args(cfg, Path("/tmp/unused"), "cpu")
    assert args.warmup_steps == round(warmup * 20)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=args.learning_rate)
    scheduler = get_scheduler(args.lr_scheduler_type, optimizer, num_warmup_steps=args.warmup_steps, num_training_steps=args.max_steps)
    lrs = []
    for _ in range(args.max_steps + 1):
        lrs.append(scheduler.get_last_lr()[0] / cfg.algorithm.lr)
        optimizer.step()
        scheduler.step()
    assert [round(lrs[i], 3) for i in (0, 4, 12, 20)] == expected  # steps 0, end of warmup, middle of the decay, end


@pytest.mark.parametrize("override, message", [
    ("algorithm.lr_schedule=linear", "lr_schedule: 'linear' not one of"),  # verl's fsdp optimizer has constant and cosine only
    ("algorithm.warmup_ratio=1.0", "warmup_ratio 1.0 not in"),
    ("algorithm.group_size=1", "group_size >= 2"),
    ("algorithm.temperature=0", "temperature > 0"),
    ("trl.dtype=int8", "grpo.trl.dtype"),
    ("trl.device=tpu", "grpo.trl.device"),
    ("backend=verl", "not 'trl'"),
])
def test_config_errors_are_clear(tmp_path, override, message):
    from rl.grpo.trl_backend import run_trl_grpo

    with pytest.raises(ConfigError, match=message):
        cfg = load_config(GrpoJobConfig, CONFIG, ["model_path=/nonexistent", f"output_dir={tmp_path}", override])
        run_trl_grpo(cfg)


def test_missing_model_and_data_are_config_errors(tmp_path, tiny_random_model):
    from rl.grpo.trl_backend import run_trl_grpo

    with pytest.raises(ConfigError, match="no HF model folder"):
        run_trl_grpo(load_config(GrpoJobConfig, CONFIG, [f"model_path={tmp_path / 'nope'}", f"output_dir={tmp_path / 'o'}"]))
    with pytest.raises(ConfigError, match="does not exist"):
        run_trl_grpo(load_config(GrpoJobConfig, CONFIG, [f"model_path={tiny_random_model}", f"output_dir={tmp_path / 'o'}",
                                                         f"data.train={tmp_path / 'missing'}"]))


def test_prompt_parts_keep_image_positions():
    from rl.grpo.trl_dataset import prompt_parts

    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Look <image> then <image>: which?"}]
    out = prompt_parts(msgs)
    assert out[0] == {"role": "system", "content": [{"type": "text", "text": "Be brief."}]}
    assert out[1]["content"] == [{"type": "text", "text": "Look "}, {"type": "image"}, {"type": "text", "text": " then "},
                                 {"type": "image"}, {"type": "text", "text": ": which?"}]


def test_reward_adapter_is_the_verl_entrypoint():
    from rl.grpo.trl_reward import VerlRewardFunction, load_entrypoint
    from rl.reward import compute_score

    fn = load_entrypoint("", "compute_score")
    assert fn is compute_score
    cfg_path = str(REPO / "configs" / "reward" / "boxed.yaml")
    adapter = VerlRewardFunction(fn, cfg_path)
    info = {"index": 0, "task": "counting", "verifier": "numeric", "verifier_params": '{"tolerance": 0}'}
    completions = [[{"role": "assistant", "content": "\\boxed{3}"}], [{"role": "assistant", "content": "\\boxed{4}"}], "3"]
    logged = {}
    scores = adapter(prompts=[None] * 3, completions=completions, data_source=["gradus-synth"] * 3,
                     reward_model=[{"style": "rule", "ground_truth": "3"}] * 3, extra_info=[info] * 3,
                     log_metric=lambda k, v: logged.__setitem__(k, v))
    expected = [compute_score("gradus-synth", t, "3", info, reward_config=cfg_path)["score"] for t in ("\\boxed{3}", "\\boxed{4}", "3")]
    assert scores == expected == [1.0, 0.0, 0.0]
    assert logged["acc"] == pytest.approx(1 / 3) and logged["format"] == pytest.approx(2 / 3)


def test_custom_entrypoint_file_gets_verls_call(tmp_path):
    from types import SimpleNamespace

    from rl.grpo.trl_reward import VerlRewardFunction, load_entrypoint

    custom = tmp_path / "my_reward.py"
    custom.write_text(
        "def score(data_source, solution_str, ground_truth, extra_info=None):\n"
        "    return float(solution_str.strip() == ground_truth) + (0.5 if extra_info and extra_info.get('bonus') else 0.0)\n"
    )
    fn = VerlRewardFunction(load_entrypoint(str(custom), "score"))
    state = SimpleNamespace(global_step=3, max_steps=10)  # progress is not passed: the function does not take it
    scores = fn(prompts=[None] * 2, completions=["yes", " no"], data_source=["d", "d"],
                reward_model=[{"ground_truth": "yes"}, {"ground_truth": "yes"}], extra_info=[{"bonus": 1}, None], trainer_state=state)
    assert scores == [1.5, 0.0]
    with pytest.raises(ConfigError, match="no function"):
        load_entrypoint(str(custom), "compute_score")


@pytest.mark.slow
def test_two_steps_on_the_warm_model(tmp_path, warm_model, warm_corpus):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from engine.data.shards import iter_samples
    from engine.generation.base import GenerationConfig, GenerationRequest
    from engine.generation.hf_backend import HFBackend
    from rl.grpo.trl_backend import run_trl_grpo

    cfg = _cfg(tmp_path, warm_model, warm_corpus)
    summary = run_trl_grpo(cfg)
    out = tmp_path / "run"

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert 0.0 <= r["reward"] <= 1.0 and r["reward_std"] >= 0 and "loss" in r and r["wall_s"] > 0
        assert r["reward"] == pytest.approx(r["acc"])  # boxed.yaml: score = acc, straight from compute_score
    assert "kl" in rows[1]
    # the mechanism per step (rl/grpo/group_signal.py): each round is 2 prompts x 4 responses
    for r in rows:
        assert r["rollouts"] == 8 and 0.0 <= r["informative_share"] <= 1.0 and r["unscored_rollouts"] == 0
        assert r["zero_signal_rollouts"] == round((1 - r["informative_share"]) * r["rollouts"])
        assert r["informative_share"] == pytest.approx(1 - r["frac_reward_zero_std"])  # every reward scored: TRL's count agrees
        assert (r["adv_abs_mean"] > 0) == (r["informative_share"] > 0)  # only informative groups get a nonzero advantage
        assert r["reward_std_in_group"] >= 0
    # the same shares from the rollout log (every completion's score and sample id): the hook groups by prompt
    from rl.grpo.group_signal import signal_by_step
    from rl.grpo.rollout_log import read_rollouts

    logged = {s["step"]: s for s in signal_by_step(read_rollouts(out / "rollouts").to_pylist())}
    assert [logged[r["step"]]["informative_share"] for r in rows] == pytest.approx([r["informative_share"] for r in rows])
    signal = summary["signal"]
    assert signal["rollouts"] == 16 and signal["zero_signal_rollouts"] == sum(r["zero_signal_rollouts"] for r in rows)
    assert signal["informative_share"]["mean"] == pytest.approx(sum(r["informative_share"] for r in rows) / 2, abs=1e-4)
    assert signal["informative_share"]["first"] == pytest.approx(rows[0]["informative_share"], abs=1e-4)
    assert summary["steps"] == 2 and summary["reward_window"] == 1
    assert summary["reward_first"] == pytest.approx(rows[0]["reward"], abs=1e-4)
    assert summary["reward_last"] == pytest.approx(rows[1]["reward"], abs=1e-4)
    assert summary["data"]["kept"] == 16 and summary["model_id"] == "gradus/tiny-qwen2.5-vl"
    saved = json.loads((out / "summary.json").read_text())
    assert saved["config_hash"] == summary["config_hash"] and saved["gradus_version"] and saved["seed"] == 0
    assert (out / "reward_curve.png").stat().st_size > 0

    model_dir = Path(summary["output_model"])
    meta = json.loads((model_dir / "gradus_model.json").read_text())
    assert meta["stage"] == "grpo" and meta["parent"] == str(warm_model)
    assert json.loads((model_dir / "config.json").read_text()).get("use_cache", True) is True  # inference settings restored
    assert json.loads((model_dir / "generation_config.json").read_text()) == json.loads((warm_model / "generation_config.json").read_text())
    model = AutoModelForImageTextToText.from_pretrained(model_dir, local_files_only=True)
    processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
    assert processor.tokenizer.chat_template or processor.chat_template
    trained = dict(model.named_parameters())
    base = dict(AutoModelForImageTextToText.from_pretrained(warm_model, local_files_only=True).named_parameters())
    assert any(not torch.equal(trained[k], base[k]) for k in base)  # the policy moved

    sample = next(s for s in iter_samples(warm_corpus / "test") if s.task == "color")
    from engine.data.images import ImagePolicy

    backend = HFBackend(GenerationConfig(backend="hf", model_path=str(model_dir), max_new_tokens=24, device="cpu"), model=model, processor=processor)
    (gen,) = backend.generate([GenerationRequest(sample.prompt_messages, sample.load_images(ImagePolicy()))])
    assert gen.text.startswith("\\boxed{")


@pytest.mark.slow
def test_checkpoint_resume(tmp_path, warm_model, warm_corpus):
    from rl.grpo.trl_backend import run_trl_grpo

    first = run_trl_grpo(_cfg(tmp_path, warm_model, warm_corpus, "algorithm.steps=1", "trl.save_every=1"))
    assert first["resumed_from"] is None
    assert (tmp_path / "run" / "checkpoints" / "checkpoint-1").is_dir()
    second = run_trl_grpo(_cfg(tmp_path, warm_model, warm_corpus, "algorithm.steps=2", "trl.save_every=1"))
    assert second["resumed_from"].endswith("checkpoint-1")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]  # step 1 kept from the first run, step 2 trained after the resume
    assert rows[0]["reward"] == pytest.approx(first["reward_first"], abs=1e-4)
