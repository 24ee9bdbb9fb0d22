"""gradus's verl reward entrypoint runs through verl 0.9.1's own reward machinery on CPU.

What this proves, with no Ray, GPU or rollout engine:
- verl's real trainer config (``verl/trainer/config/ppo_trainer.yaml``, composed with Hydra) plus the
  overrides ``reward.custom_reward_function.{path,name}`` makes ``load_reward_manager`` load
  ``rl/reward.py:compute_score`` into verl's ``naive`` reward manager;
- ``NaiveRewardManager.run_single`` decodes real token ids with a real tokenizer, hands our function
  ``data_source`` / ``reward_model.ground_truth`` / ``extra_info``, runs it in a worker thread (not
  the main thread, which the math verifier must survive) and returns our score and extra info;
- ``RewardLoopWorker.compute_score_batch`` (the object verl wraps in a Ray actor) gives the same,
  and its outputs assemble into ``rm_scores`` and ``reward_extra_info`` arrays the way
  ``RewardLoopManager.compute_rm_score`` does it (which needs every row to return the same keys);
- the trap: the legacy top-level ``custom_reward_function.*`` keys alone load verl's default scorer,
  not ours (only ``migrate_legacy_reward_impl``, called by verl's fully-async entrypoint but not by
  ``main_ppo``, would move them under ``reward.``).
"""
from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from rl.grpo.verl_launch import compose

REPO = Path(__file__).resolve().parents[3]
REWARD_PY = REPO / "rl" / "reward.py"
DATA_SOURCE = "gradus"
RESULT_KEYS = {"score", "acc", "format", "pred", "reason", "bucket", "difficulty"}
PROMPT = "How many shapes are there? Put the final answer in \\boxed{}."


@dataclass(frozen=True)
class Case:
    name: str
    response: str
    truth: str
    extra_info: dict
    acc: float
    pred: str
    parsed: bool = True
    tags: dict = field(default_factory=lambda: {"bucket": None, "difficulty": None})


CASES = [
    Case("numeric_correct", r"<think>x</think><answer>\boxed{12}</answer>", "12",
         {"verifier": "numeric", "verifier_params": {}}, acc=1.0, pred="12"),
    Case("numeric_trap", r"<think>x</think><answer>\boxed{2}</answer>", "12",
         {"verifier": "numeric", "verifier_params": {}}, acc=0.0, pred="2"),
    # Runs in verl's executor thread: a signal/alarm based timeout in the math verifier would break here.
    Case("math_frac", r"<think>x</think><answer>\boxed{\frac{1}{2}}</answer>", "0.5",
         {"verifier": "math", "verifier_params": {}}, acc=1.0, pred=r"\frac{1}{2}"),
    Case("no_answer", "<think>I am not sure, so I will not answer.</think>", "12",
         {"verifier": "numeric", "verifier_params": {}}, acc=0.0, pred="", parsed=False),
    # verifier_params as a JSON string (how heterogeneous params survive parquet), plus difficulty tags.
    Case("tagged_exact", r"<think>x</think><answer>\boxed{3}</answer>", "3",
         {"verifier": "exact", "verifier_params": "{}", "bucket": "hard", "difficulty": 0.7},
         acc=1.0, pred="3", tags={"bucket": "hard", "difficulty": 0.7}),
]


@pytest.fixture(scope="module")
def reward_py() -> Path:
    assert REWARD_PY.is_file(), f"gradus's verl reward entrypoint is missing: {REWARD_PY}"
    return REWARD_PY


@pytest.fixture(scope="module")
def ppo_config(reward_py, tiny_random_model):
    return compose([
        f"reward.custom_reward_function.path='{reward_py}'",
        "reward.custom_reward_function.name=compute_score",
        # Only RewardLoopWorker reads this (it builds its own tokenizer from the actor model path).
        f"actor_rollout_ref.model.path='{tiny_random_model}'",
    ])


@pytest.fixture(scope="module")
def tokenizer(tiny_random_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_random_model, local_files_only=True)


def make_batch(tokenizer, cases: list[Case]):
    """A rollout-shaped DataProto: left-padded prompts, right-padded responses ending in EOS."""
    from verl import DataProto

    prompt_ids = tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    responses = []
    for case in cases:
        ids = tokenizer(case.response, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids, skip_special_tokens=True) == case.response, "tokenizer must round-trip"
        responses.append(ids + [tokenizer.eos_token_id])
    pad = tokenizer.pad_token_id
    n, plen, rlen = len(cases), len(prompt_ids) + 2, max(map(len, responses)) + 3
    prompts = torch.full((n, plen), pad, dtype=torch.long)
    prompt_mask = torch.zeros((n, plen), dtype=torch.long)
    prompts[:, plen - len(prompt_ids):] = torch.tensor(prompt_ids)
    prompt_mask[:, plen - len(prompt_ids):] = 1
    resp = torch.full((n, rlen), pad, dtype=torch.long)
    resp_mask = torch.zeros((n, rlen), dtype=torch.long)
    for i, ids in enumerate(responses):
        resp[i, : len(ids)] = torch.tensor(ids)
        resp_mask[i, : len(ids)] = 1
    attention_mask = torch.cat([prompt_mask, resp_mask], dim=1)
    return DataProto.from_dict(
        tensors={
            "prompts": prompts,
            "responses": resp,
            "input_ids": torch.cat([prompts, resp], dim=1),
            "attention_mask": attention_mask,
            "position_ids": (attention_mask.cumsum(dim=1) - 1).clamp(min=0),
        },
        non_tensors={
            "data_source": np.array([DATA_SOURCE] * n, dtype=object),
            "reward_model": np.array([{"style": "rule", "ground_truth": c.truth} for c in cases], dtype=object),
            # copies: verl's manager writes num_turns / rollout_reward_scores into this dict in place
            "extra_info": np.array([dict(c.extra_info) for c in cases], dtype=object),
        },
    )


def spy_on_threads(manager) -> list[bool]:
    """Wrap the manager's compute_score; record, per call, whether it ran on the main thread."""
    on_main: list[bool] = []
    inner = manager.compute_score

    def spy(*args, **kwargs):
        on_main.append(threading.current_thread() is threading.main_thread())
        return inner(*args, **kwargs)

    manager.compute_score = spy
    return on_main


def check_outputs(outputs: list[dict]) -> None:
    assert len(outputs) == len(CASES)
    by_name = {}
    for case, out in zip(CASES, outputs):
        info = out["reward_extra_info"]
        assert RESULT_KEYS <= set(info), f"{case.name}: missing {RESULT_KEYS - set(info)}"
        assert isinstance(out["reward_score"], float) and out["reward_score"] == info["score"], case.name
        assert info["acc"] == case.acc, (case.name, info)
        assert info["pred"] == case.pred, (case.name, info)
        if case.parsed:
            assert info["reason"] == "", (case.name, info)
        else:
            assert isinstance(info["reason"], str) and info["reason"], (case.name, info)
        assert {k: info[k] for k in case.tags} == case.tags, (case.name, info)
        by_name[case.name] = out["reward_score"]
    # RewardLoopManager.compute_rm_score takes the key list from row 0 and indexes every row by it.
    assert len({frozenset(o["reward_extra_info"]) for o in outputs}) == 1, "rows returned different keys"
    assert by_name["numeric_correct"] > 0
    for wrong in ("numeric_trap", "no_answer"):
        assert by_name[wrong] < by_name["numeric_correct"], by_name


def test_load_reward_manager_loads_gradus_compute_score_on_cpu(ppo_config, tokenizer, reward_py):
    from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager
    from verl.trainer.ppo.reward import load_reward_manager

    async def load():
        return load_reward_manager(ppo_config, tokenizer)

    manager = asyncio.run(load())
    assert type(manager) is NaiveRewardManager
    assert not manager.is_async_reward_score  # so run_single calls it through run_in_executor
    # get_custom_reward_fn wraps the raw function as partial(_call_with_kwargs, raw_fn, reward_kwargs)
    assert isinstance(manager.compute_score, partial)
    raw_fn = manager.compute_score.args[0]
    assert raw_fn.__name__ == "compute_score"
    assert Path(raw_fn.__code__.co_filename).resolve() == reward_py.resolve()


def test_naive_reward_manager_scores_gradus_cases_on_cpu(ppo_config, tokenizer):
    from verl.trainer.ppo.reward import load_reward_manager

    data = make_batch(tokenizer, CASES)

    async def score_all():
        # Built inside the running loop: RewardManagerBase keeps asyncio.get_event_loop() from
        # construction time and awaits run_in_executor futures on it, so a manager built outside
        # asyncio.run() would hand back futures attached to a different loop.
        manager = load_reward_manager(ppo_config, tokenizer)
        on_main = spy_on_threads(manager)
        # one sample per call, as RewardLoopWorker.compute_score_batch slices it
        outputs = await asyncio.gather(*(manager.run_single(data[i : i + 1]) for i in range(len(data))))
        return outputs, on_main

    outputs, on_main = asyncio.run(score_all())
    assert on_main == [False] * len(CASES), "verl must call compute_score off the main thread"
    check_outputs(outputs)
    for case, out in zip(CASES, outputs):
        assert out["reward_extra_info"]["score"] == out["reward_score"], case.name


def test_reward_loop_worker_batch_on_cpu(ppo_config, tokenizer):
    """The worker verl runs as a Ray actor, driven directly, then assembled like compute_rm_score."""
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker
    from verl.trainer.ppo.reward import resolve_reward_manager_cls

    data = make_batch(tokenizer, CASES)

    async def score_batch():
        worker = RewardLoopWorker(ppo_config)  # reward_router_address=None: no reward model server
        on_main = spy_on_threads(worker.reward_manager)
        return await worker.compute_score_batch(data), on_main

    outputs, on_main = asyncio.run(score_batch())
    assert on_main == [False] * len(CASES)
    check_outputs(outputs)

    # RewardLoopManager.compute_rm_score, minus Ray: the score sits on each row's last valid response token.
    scores = [o["reward_score"] for o in outputs]
    rm_scores = resolve_reward_manager_cls(ppo_config).assemble_rm_scores(data, scores)
    last = data.batch["attention_mask"][:, data.batch["prompts"].shape[1]:].sum(dim=1) - 1
    assert torch.equal(rm_scores[torch.arange(len(CASES)), last], torch.tensor(scores, dtype=torch.float32))
    assert rm_scores.sum().item() == pytest.approx(sum(scores))
    keys = list(outputs[0]["reward_extra_info"])
    extra = {k: np.array([o["reward_extra_info"][k] for o in outputs]) for k in keys}
    assert extra["acc"].tolist() == [c.acc for c in CASES]
    assert extra["bucket"].tolist() == [c.tags["bucket"] for c in CASES]
    assert extra["difficulty"].tolist() == [c.tags["difficulty"] for c in CASES]


def test_legacy_top_level_custom_reward_function_is_ignored_on_cpu(reward_py, tokenizer):
    from verl.experimental.reward_loop import migrate_legacy_reward_impl
    from verl.trainer.ppo.reward import get_custom_reward_fn, load_reward_manager
    from verl.utils.reward_score import default_compute_score

    legacy = compose([
        f"custom_reward_function.path='{reward_py}'",
        "custom_reward_function.name=compute_score",
    ])
    assert legacy.reward.custom_reward_function.path is None
    assert get_custom_reward_fn(legacy) is None

    async def score_one():
        manager = load_reward_manager(legacy, tokenizer)
        assert manager.compute_score is default_compute_score  # verl's built-in, not ours
        return await manager.run_single(make_batch(tokenizer, CASES[:1]))

    with pytest.raises(NotImplementedError, match="Reward function is not implemented"):
        asyncio.run(score_one())

    # Only an explicit migration (verl's fully-async entrypoint does it; main_ppo does not) moves them.
    assert get_custom_reward_fn(migrate_legacy_reward_impl(legacy)) is not None
