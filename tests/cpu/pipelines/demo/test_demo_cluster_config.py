"""The main job's GPU-cluster config (configs/demo/qwen2_5_vl_7b_cluster.yaml) is a valid plan.

Every stage recipe loads with the demo's overrides and validates, and every arm's curriculum,
dry-run, gives verl override sets that compose in verl's own Hydra config with the same step
budget, each stage starting from the previous stage's merged model. verl itself needs GPUs.
"""
import shutil
from pathlib import Path

import pytest

from engine.config import load_config
from pipelines.demo import DemoConfig
from pipelines.demo.run import _recipe, arm_curriculum

REPO = Path(__file__).resolve().parents[4]
CLUSTER = REPO / "configs" / "demo" / "qwen2_5_vl_7b_cluster.yaml"


def test_cluster_config_stage_recipes_load_and_validate():
    from pipelines.shaping.select import SelectJobConfig
    from pipelines.shaping.store import StoreConfig
    from pipelines.cmab import CmabJobConfig
    from pipelines.evaluate import EvalJobConfig
    from pipelines.pism import PismJobConfig
    from rl.grpo.config import GrpoJobConfig
    from rl.sft.config import SFTConfig

    cfg = load_config(DemoConfig, CLUSTER)
    cfg.validate()
    assert len(cfg.seeds) >= 2  # run-to-run spread on the cluster too
    pism = _recipe(PismJobConfig, cfg.pism, [])
    cmab = _recipe(CmabJobConfig, cfg.cmab, ["responses.pism_scores="])  # the demo points it at its own PISM run
    assert pism.generation.backend == "vllm" and pism.actors.num_gpus == 1 and pism.actors.max_actors == 64
    assert cmab.actors.max_actors == 64
    grpo = _recipe(GrpoJobConfig, cfg.grpo, [])
    assert grpo.backend == "verl" and grpo.verl.address == "" and grpo.algorithm.steps == 300
    sft = _recipe(SFTConfig, cfg.sft, [])
    assert sft.use_gpu
    ev = _recipe(EvalJobConfig, cfg.eval, [])
    ev.validate()
    assert ev.actors.num_gpus == 1 and ev.generation.backend == "vllm"
    for recipe, cls in ((cfg.store, StoreConfig), (cfg.select, SelectJobConfig)):
        _recipe(cls, recipe, []).validate()


@pytest.mark.slow
def test_cluster_arms_compose_in_verl_with_one_step_budget(tmp_path, warm_corpus, tiny_random_model):
    import json

    from rl.curriculum.run import run_curriculum
    from rl.sources import resolve_data
    from rl.grpo.verl_launch import validate_overrides

    cfg = load_config(DemoConfig, CLUSTER, [f"out_dir={tmp_path}"])
    shards = resolve_data(f"{warm_corpus / 'train'}?per_task=2", tmp_path / "src", "pool")
    record = json.loads(json.dumps({"arms": {
        "grpo_fullset": {"grpo": {"selection": "fullset", "path": "selections/fullset", "count": 12}},
        "grpo_random": {"grpo": {"selection": "random", "path": "selections/random", "count": 12}},
        "grpo_mid_hard": {"grpo": {"selection": "mid_hard", "path": "selections/mid_hard", "count": 12}},
        "sft_mid_grpo_hard": {"sft": {"selection": "mid", "path": "selections/mid", "count": 12},
                              "grpo": {"selection": "hard", "path": "selections/hard", "count": 12}}}}))
    for name in ("fullset", "random", "mid_hard", "mid", "hard"):
        shutil.copytree(shards, tmp_path / "select" / "selections" / name)

    budgets = set()
    for label in cfg.arms:
        curriculum = arm_curriculum(cfg, label, 0, record, tiny_random_model, tmp_path)
        curriculum.dry_run = True
        plan = run_curriculum(curriculum)
        stages = plan["stages"]
        assert stages[0]["input_model"] == str(tiny_random_model)
        for prev, cur in zip(stages, stages[1:]):
            assert cur["input_model"] == prev["output_model"]
        grpo = stages[-1]
        config = validate_overrides(grpo["verl"]["overrides"])  # composed in verl's config, read back, verl's validate_config
        assert config.actor_rollout_ref.model.path == grpo["input_model"]
        assert config.trainer.nnodes == 2 and config.trainer.n_gpus_per_node == 8
        budgets.add(config.trainer.total_training_steps)
        assert [s["kind"] for s in stages] == (["sft", "grpo"] if label == "sft_grpo" else ["grpo"])
    assert budgets == {300}
