"""The verl GRPO hand-off on CPU: every override set gradus generates composes in verl 0.9.1's own
Hydra trainer config with the values we set (read back) and passes verl's validate_config; bad
sets are refused before launch; the reward entrypoint loads through verl's manager from the
generated set; `gradus train grpo --backend verl --dry-run` exports data verl's dataset keeps whole."""
import asyncio
import json
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from engine.config import ConfigError, load_config
from rl.grpo.config import GrpoJobConfig
from rl.grpo.verl_launch import merge_command, validate_overrides, verl_overrides

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "configs" / "grpo" / "qwen2_5_vl_7b_verl.yaml"


def _cfg(**changes) -> GrpoJobConfig:
    cfg = load_config(GrpoJobConfig, EXAMPLE, [f"{k}={v}" for k, v in changes.items()])
    cfg.validate()
    return cfg


@pytest.mark.parametrize("changes", [{}, {"data.shuffle": "false", "algorithm.kl_coef": 0.0, "wandb.mode": "disabled"},
                                     {"verl.nnodes": 4, "verl.tensor_parallel_size": 4, "reward.config": "''"},
                                     {"algorithm.lr_schedule": "cosine", "algorithm.warmup_ratio": 0.1}])
def test_generated_overrides_compose_and_read_back(changes):
    cfg = _cfg(**changes)
    overrides = verl_overrides(cfg, "/data/train.parquet", "/data/val.parquet", uploaded=True)
    config = validate_overrides(overrides)  # composes, reads every key back, runs verl's validate_config
    assert config.algorithm.adv_estimator == "grpo"
    assert config.actor_rollout_ref.rollout.n == cfg.algorithm.group_size
    assert config.actor_rollout_ref.rollout.name == "vllm"
    assert config.data.train_batch_size == cfg.algorithm.prompts_per_step and config.data.shuffle == cfg.data.shuffle
    assert config.trainer.nnodes == cfg.verl.nnodes and config.trainer.total_training_steps == cfg.algorithm.steps
    assert config.reward.custom_reward_function.path == "rl/reward.py"  # relative to the uploaded working_dir
    assert config.actor_rollout_ref.actor.use_kl_loss == (cfg.algorithm.kl_coef > 0)
    optim = config.actor_rollout_ref.actor.optim
    assert (optim.lr_scheduler_type, optim.lr_warmup_steps_ratio) == (cfg.algorithm.lr_schedule, cfg.algorithm.warmup_ratio)
    assert config.trainer.rollout_data_dir == str(Path(cfg.output_dir).resolve() / "rollouts")  # -> gradus data pass-rates
    kwargs = OmegaConf.select(config, "reward.custom_reward_function.reward_kwargs", default=None)
    assert (kwargs is not None and kwargs.reward_config.endswith("vtriune.yaml")) == bool(cfg.reward.config)
    if cfg.reward.config:  # a repo file, named relative to the uploaded working_dir (this machine's path is not on the cluster)
        assert kwargs.reward_config == "configs/reward/vtriune.yaml"
    assert not any(o.startswith("custom_reward_function.") for o in overrides)


@pytest.mark.parametrize("extra, message", [
    ("trainer.no_such_key=1", "rejects the override set"),  # a key verl does not have
    ("custom_reward_function.path=/x.py", "ignores top-level"),  # accepted by Hydra, never read by main_ppo
    ("data.train_batch_size=3", "reads back"),  # a second value for a key we set: ours would be lost
    ("actor_rollout_ref.actor.ppo_micro_batch_size=8", "validate_config"),  # verl: micro batch size given twice
])
def test_bad_override_sets_are_refused(extra, message):
    cfg = _cfg()
    with pytest.raises(ConfigError, match=message):
        validate_overrides(verl_overrides(cfg, "/data/train.parquet", "") + [extra])


def test_reward_entrypoint_loads_through_verl_manager_from_generated_set(tiny_random_model):
    from transformers import AutoTokenizer
    from verl.trainer.ppo.reward import load_reward_manager

    cfg = _cfg(model_path=str(tiny_random_model))
    config = validate_overrides(verl_overrides(cfg, "/data/train.parquet", "", uploaded=False))

    async def load():
        return load_reward_manager(config, AutoTokenizer.from_pretrained(tiny_random_model, local_files_only=True))

    manager = asyncio.run(load())
    assert isinstance(manager.compute_score, partial)
    raw_fn, kwargs = manager.compute_score.args[0], manager.compute_score.args[1]
    assert Path(raw_fn.__code__.co_filename).resolve() == (REPO / "rl" / "reward.py").resolve()
    assert kwargs["reward_config"].endswith("configs/reward/vtriune.yaml")  # our RewardConfig reaches compute_score


@pytest.mark.slow
def test_train_grpo_verl_dry_run_exports_data_verl_keeps(warm_model, warm_corpus, tmp_path):
    from transformers import AutoProcessor, AutoTokenizer
    from verl.utils.dataset import rl_dataset

    out = tmp_path / "grpo"
    cli = [sys.executable, "-m", "pipelines.cli", "train", "grpo", "--config", str(EXAMPLE), "--backend", "verl", "--dry-run",
           f"model_path={warm_model}", f"output_dir={out}", f"data.train={warm_corpus / 'val'}", "data.val=''",
           "data.max_prompt_length=512", "verl.address=''", "reward.config=''"]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(done.stdout[done.stdout.rindex("\n{\n") + 1:])  # the CLI's result comes last (verl prints too)
    # run here (no address): main_ppo under the interpreter that validated the set; `verl.python` is the cluster's
    assert record["launched"] is False and record["command"][:3] == [sys.executable, "-m", "verl.trainer.main_ppo"]
    assert (out / "verl_overrides.txt").read_text().split() == record["overrides"]

    # filter_overlong_prompts_workers None: verl filters in this process. Its default forks a pool from
    # the test process, and a fork of a process holding Ray's gRPC clients leaves the parent's existing
    # GCS channels dead: every later ray.cluster_resources() of the shared session blocked for good
    # (a CI run hung in the next Ray Data job until its hard limit).
    config = OmegaConf.create({"max_prompt_length": 512, "filter_overlong_prompts": True, "filter_overlong_prompts_workers": None,
                               "image_key": "images", "prompt_key": "prompt", "return_raw_chat": True, "truncation": "error"})
    dataset = rl_dataset.RLHFDataset([record["train_file"]], AutoTokenizer.from_pretrained(warm_model, local_files_only=True),
                                     config, processor=AutoProcessor.from_pretrained(warm_model, local_files_only=True))
    assert len(dataset) == 300  # every validation sample survives verl's overlong/processor filter


def test_merge_command_flags_are_verls():
    help_text = subprocess.run([sys.executable, "-m", "verl.model_merger", "merge", "--help"], capture_output=True, text=True, timeout=300).stdout
    flags = [a for a in merge_command("/ckpt/global_step_5/actor", "/out/hf") if a.startswith("--")]
    assert flags and all(f in help_text for f in flags), (flags, help_text[-800:])


def test_verl_submission_uses_the_one_submitters_runtime_env_and_entrypoints():
    """The verl launcher builds its job through engine/jobs.py: the same code package as `gradus submit`,
    credential-looking env vars refused (TOKENIZERS_PARALLELISM is not one), main_ppo or the in-job dry run."""
    from engine import jobs
    from rl.grpo.verl_launch import job_command, runtime_env

    cfg = _cfg(**{"verl.runtime_env": "{env_vars: {HF_HUB_OFFLINE: '1'}}", "verl.python": "/opt/env/bin/python"})
    env = runtime_env(cfg)
    assert env["excludes"] == jobs.EXCLUDES and env["working_dir"] == str(jobs.REPO_ROOT)
    assert env["env_vars"] == {"WANDB_MODE": "offline", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    for secret in ("WANDB_API_KEY", "HF_TOKEN", "AWS_SECRET_ACCESS_KEY"):
        with pytest.raises(ConfigError, match="credentials"):
            runtime_env(_cfg(**{"verl.runtime_env": f"{{env_vars: {{{secret}: abc}}}}"}))
    assert job_command(cfg, ["a=1"]) == ["/opt/env/bin/python", "-m", "verl.trainer.main_ppo", "a=1"]
    cfg.verl.dry_run_in_job = True
    assert job_command(cfg, ["a=1"]) == ["/opt/env/bin/python", "-m", "rl.grpo.verl_dry_run", "a=1"]
