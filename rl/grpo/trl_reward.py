"""The verl reward entrypoint as a TRL reward function: one scorer for both GRPO backends.

verl calls `compute_score(data_source, solution_str, ground_truth, extra_info, **reward_kwargs)` per
response, with `reward_kwargs` from `reward.custom_reward_function.reward_kwargs` (gradus passes
`reward_config`). TRL calls a reward function once per generation batch with the completions and
every dataset column except the prompt; this adapter reads `data_source`,
`reward_model.ground_truth` and `extra_info` from those columns and calls the same function (the
file in `reward.path`, else rl/reward.py) with the same `reward_config`. To a function that takes it
(gradus's does), it also passes training progress (global_step / max_steps) as `progress`, which
compute_score uses for scheduled thresholds (V-Triune's rising IoU bar) and otherwise ignores.
"""
from __future__ import annotations

import importlib.util
import inspect
import math
from pathlib import Path
from typing import Any, Callable, Sequence

from engine.config import ConfigError

REWARD_PY = Path(__file__).resolve().parents[1] / "reward.py"


def load_entrypoint(path: str = "", name: str = "compute_score") -> Callable[..., Any]:
    """The reward function by file and name, loaded the way verl loads `custom_reward_function`."""
    if not path or Path(path).resolve() == REWARD_PY:
        import rl.reward as module
    else:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"grpo.reward.path {path} does not exist")
        spec = importlib.util.spec_from_file_location(f"gradus_custom_reward_{abs(hash(str(file.resolve())))}", file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    fn = getattr(module, name, None)
    if not callable(fn):
        raise ConfigError(f"grpo.reward: {path or REWARD_PY} has no function {name!r}")
    return fn


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def completion_text(completion: Any) -> str:
    """TRL completion -> the response string verl would decode: conversational ones are message lists."""
    if isinstance(completion, str):
        return completion
    texts = []
    for msg in completion:
        content = msg.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return "".join(texts)


class VerlRewardFunction:
    """TRL reward function wrapping `compute_score`; logs mean acc / format beside TRL's reward."""

    __name__ = "gradus_reward"  # TRL names its per-function metrics rewards/<name>/mean

    def __init__(self, compute_score: Callable[..., Any], reward_config: Any = None):
        self.compute_score = compute_score
        self.reward_config = reward_config
        self.takes_progress = _accepts(compute_score, "progress")  # a custom entrypoint may not take it
        self.on_scored: Callable[..., Any] | None = None  # rl/grpo/rollout_log.py RolloutLog.record: per-rollout verdicts

    def score_one(self, data_source: str, solution: str, ground_truth: str, extra_info: dict | None, progress: float | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self.reward_config is not None:
            kwargs["reward_config"] = self.reward_config
        if progress is not None and self.takes_progress:
            kwargs["progress"] = progress
        out = self.compute_score(data_source, solution, ground_truth, extra_info, **kwargs)
        return out if isinstance(out, dict) else {"score": float(out)}

    def __call__(self, prompts: Sequence, completions: Sequence, data_source: Sequence[str], reward_model: Sequence[dict],
                 extra_info: Sequence[dict | None] | None = None, trainer_state=None, log_metric=None,
                 completion_ids: Sequence[Sequence[int]] | None = None, **_: Any) -> list[float]:
        progress = None
        if trainer_state is not None and getattr(trainer_state, "max_steps", 0):
            progress = min(1.0, trainer_state.global_step / trainer_state.max_steps)
        infos = extra_info if extra_info is not None else [None] * len(completions)
        results = [
            self.score_one(ds, completion_text(c), str((rm or {}).get("ground_truth", "")), info, progress)
            for c, ds, rm, info in zip(completions, data_source, reward_model, infos, strict=True)
        ]
        if self.on_scored is not None:
            self.on_scored(trainer_state, infos, results, completion_ids)
        if log_metric is not None:
            for key in ("acc", "format", "unjudged"):
                values = [float(r[key]) for r in results if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)]
                if values:
                    log_metric(key, sum(values) / len(values))
        scores = [float(r["score"]) for r in results]
        return [s if math.isfinite(s) else None for s in scores]
