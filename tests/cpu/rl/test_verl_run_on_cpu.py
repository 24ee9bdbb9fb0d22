"""`gradus train grpo --backend verl` without an address and a verl stage of a curriculum run verl
the same way (rl/grpo/verl_run.py): one rule for whether verl's workers see gradus as uploaded code
(submitted to an address, or running inside a submitted Ray job), main_ppo under this interpreter in
the repo root, then the last checkpoint merged into `<output_dir>/model` with the input model's
processor and a gradus_model.json.

verl cannot train on CPU, so its two child processes (main_ppo, the model merger) are replaced by
a recorder that leaves what they leave: a checkpoint marker with its actor folder, a merged model
folder. Everything before them is real: the data export and the override set composed and
validated in verl's own config.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.config import from_dict, load_config
from engine.data.shards import write_shards
from engine.paths import REPO_ROOT
from engine.synth import SynthConfig, generate_split
from rl.grpo.config import GrpoJobConfig
from rl.grpo.verl_run import PROCESSOR_FILES
from tests.support.verl_merge import write_merged_model

VERL_EXAMPLE = "configs/grpo/qwen2_5_vl_7b_verl.yaml"
LOCAL = ["verl.address=", "data.val="]  # the example submits to a cluster and validates on a path that is not here
REWARD_PATH = "reward.custom_reward_function.path="


class VerlRecorder:
    """Stands in for subprocess.run for verl's child processes only; anything else runs for real."""

    def __init__(self, real):
        self.real, self.calls = real, []

    def __call__(self, command, *args, **kwargs):
        if "verl.trainer.main_ppo" in command:
            overrides = dict(item.split("=", 1) for item in command[3:])
            root, steps = Path(overrides["trainer.default_local_dir"].strip("'")), overrides["trainer.total_training_steps"]
            (root / f"global_step_{steps}" / "actor").mkdir(parents=True)
            (root / "latest_checkpointed_iteration.txt").write_text(steps)
        elif "verl.model_merger" in command:
            write_merged_model(command)
        else:
            return self.real(command, *args, **kwargs)
        self.calls.append({"command": [str(c) for c in command], "cwd": kwargs.get("cwd")})
        return subprocess.CompletedProcess(command, 0)


@pytest.fixture
def color_shards(tmp_path) -> Path:
    samples = generate_split(SynthConfig(families=["color"], train_per_family=6, val_per_family=0, test_per_family=0), "train")
    write_shards(samples, tmp_path / "shards")
    return tmp_path / "shards"


def _train_grpo(out: Path, model: Path, data: Path) -> dict:
    from rl.grpo.run import run_grpo

    cfg = load_config(GrpoJobConfig, REPO_ROOT / VERL_EXAMPLE, [f"model_path={model}", f"output_dir={out}", f"data.train={data}", *LOCAL])
    return run_grpo(cfg)


def _curriculum_stage(out: Path, model: Path, data: Path) -> dict:
    from rl.curriculum.config import CurriculumConfig
    from rl.curriculum.run import run_curriculum

    cfg = from_dict(CurriculumConfig, {"model_path": str(model), "output_dir": str(out), "seed": 0, "wandb": {"mode": "disabled"},
                                       "stages": [{"name": "rl", "kind": "grpo", "config": VERL_EXAMPLE, "data": str(data), "overrides": LOCAL}]})
    return run_curriculum(cfg)["stages"][0]


@pytest.mark.parametrize("in_ray_job", [False, True])
def test_train_grpo_and_a_curriculum_stage_launch_and_merge_alike(tmp_path, monkeypatch, color_shards, tiny_random_model, in_ray_job):
    recorder = VerlRecorder(subprocess.run)
    monkeypatch.setattr(subprocess, "run", recorder)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")  # main_ppo would join this cluster's GPUs: no local GPU needed
    if in_ray_job:
        monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}")  # what Ray sets for a submitted job's driver
    else:
        monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR", raising=False)

    grpo = _train_grpo(tmp_path / "grpo", tiny_random_model, color_shards)
    stage = _curriculum_stage(tmp_path / "cur", tiny_random_model, color_shards)

    models = [Path(grpo["model_path"]), Path(stage["output_model"])]
    assert models == [tmp_path / "grpo" / "model", tmp_path / "cur" / "stages" / "00-rl" / "model"]
    trains, merges = recorder.calls[0::2], recorder.calls[1::2]
    assert [c["command"][1:3] for c in trains] == [["-m", "verl.trainer.main_ppo"]] * 2
    assert [c["command"][1:3] for c in merges] == [["-m", "verl.model_merger"]] * 2
    # one rule for "uploaded": the reward entrypoint is named the same way by both paths
    reward = {next(o for o in c["command"] if o.startswith(REWARD_PATH)) for c in trains}
    expected = "'rl/reward.py'" if in_ray_job else f"'{REPO_ROOT / 'rl' / 'reward.py'}'"  # relative to the uploaded working_dir
    assert reward == {REWARD_PATH + expected}
    assert grpo["uploaded"] is in_ray_job
    for call in trains:  # main_ppo under the interpreter that validated the override set, in the repo root
        assert call["command"][0] == sys.executable and Path(call["cwd"]) == REPO_ROOT
    for model in models:  # the merged folder as every backend leaves it: loadable with its processor, with provenance
        processor = {name for name in PROCESSOR_FILES if (tiny_random_model / name).is_file()}
        assert processor and (model / "config.json").is_file() and processor <= {p.name for p in model.iterdir()}
        meta = json.loads((model / "gradus_model.json").read_text())
        assert (meta["backend"], meta["parent"]) == ("verl", str(tiny_random_model))
        assert not model.with_name("model.partial").exists()
