"""The online difficulty sampler in the TRL backend (sampler.kind: online), on the real embedded default.

What this proves: each round's prompts are the sampler's (the rollout log's ids per step are the
sampler's draws, as a sampler replaying the same verdicts chooses them); every rollout verdict
reaches it; its state rides in each checkpoint, so a run killed between checkpoints and rerun
trains on the same next prompts as a run that never stopped; the posterior is written after
training.
"""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from engine.config import load_config
from rl.grpo.config import GrpoJobConfig

REPO = Path(__file__).resolve().parents[3]
CONFIG = REPO / "configs" / "grpo" / "tiny_trl.yaml"


def _cfg(out: Path, model: Path, corpus: Path, *extra: str) -> GrpoJobConfig:
    return load_config(GrpoJobConfig, CONFIG, [
        f"model_path={model}", f"output_dir={out}", f"data.train={corpus / 'train'}?tasks=color,spatial&per_task=8",
        "algorithm.steps=4", "algorithm.prompts_per_step=2", "algorithm.group_size=4", "trl.save_every=1",
        "wandb.mode=disabled", "sampler.kind=online", *extra])


def _ids_by_step(out: Path) -> dict[int, list[str]]:
    """Each step's prompts in draw order (each prompt's group is consecutive in the rollout log)."""
    from rl.grpo.rollout_log import read_rollouts

    steps: dict[int, list[str]] = {}
    for row in read_rollouts(out / "rollouts").to_pylist():
        ids = steps.setdefault(row["step"], [])
        if not ids or ids[-1] != row["id"]:
            ids.append(row["id"])
    return steps


class Crash(Exception):
    pass


def _crash_after(step: int):
    from transformers import TrainerCallback

    class CrashAfter(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # before that step's checkpoint is written
            if state.global_step == step:
                raise Crash(f"killed after step {step}")

    return CrashAfter()


@pytest.mark.slow
def test_killed_run_resumes_with_the_prompts_an_uninterrupted_run_draws(tmp_path, warm_model, warm_corpus):
    from rl.grpo.rollout_log import read_rollouts
    from rl.grpo.trl_backend import run_trl_grpo
    from rl.sampler import build_sampler

    whole = run_trl_grpo(_cfg(tmp_path / "whole", warm_model, warm_corpus))
    with pytest.raises(Crash):
        run_trl_grpo(_cfg(tmp_path / "cut", warm_model, warm_corpus), callbacks=[_crash_after(3)])
    cut = tmp_path / "cut"
    assert sorted(p.name for p in (cut / "checkpoints").glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    assert (cut / "checkpoints" / "checkpoint-2" / "sampler_state.json").is_file()
    resumed = run_trl_grpo(_cfg(cut, warm_model, warm_corpus))
    assert resumed["resumed_from"].endswith("checkpoint-2")

    want, got = _ids_by_step(tmp_path / "whole"), _ids_by_step(cut)
    assert sorted(want) == sorted(got) == [1, 2, 3, 4] and all(len(v) == 2 for v in want.values())
    assert got[3] == want[3]  # drawn from the state saved at checkpoint-2, not from the lost step 3's verdicts
    verdicts = lambda out, step: [r["passed"] for r in read_rollouts(out / "rollouts").to_pylist() if r["step"] == step]  # noqa: E731
    assert verdicts(cut, 3) == verdicts(tmp_path / "whole", 3)  # restored RNG: the same rollouts after the resume
    assert got[4] == want[4]  # ... so the same next prompts

    # the draws are the sampler's: a fresh sampler fed the run's verdicts picks the same ids each step
    data = pq.read_table(tmp_path / "whole" / "data" / "train.parquet", columns=["extra_info"]).column("extra_info").to_pylist()
    cfg = _cfg(tmp_path / "whole", warm_model, warm_corpus).sampler
    replay, report = build_sampler(cfg, data, seed=0)
    rows = read_rollouts(tmp_path / "whole" / "rollouts").to_pylist()
    for step in range(1, 5):
        assert replay.next_batch(2) == want[step]
        done = [r for r in rows if r["step"] == step]
        replay.update([r["id"] for r in done], [r["passed"] for r in done])
    assert report["samples"] == 16

    sampler = whole["sampler"]
    assert sampler["kind"] == "online" and sampler["rounds_this_process"] == 4
    post = {r["id"]: r for r in pq.read_table(sampler["posterior"]).to_pylist()}
    assert sum(r["verdicts"] for r in post.values()) == 4 * 2 * 4  # every rollout verdict reached the sampler
    assert json.loads((tmp_path / "whole" / "summary.json").read_text())["sampler"]["posterior"] == sampler["posterior"]
