"""verl reward entrypoint: `reward.custom_reward_function.path=<this file>` `...name=compute_score`.

verl calls compute_score(data_source, solution_str, ground_truth, extra_info) per response (from an
executor thread). We dispatch on the verifier carried in extra_info (written by gradus' verl
exporter), combine verifier and format scores per the reward config, and return a dict with the
same keys for every response: verl logs every key, and averages the numeric ones in validation.
`sample_id` (extra_info.id) lets verl's rollout dump be turned into pass rates per sample.

The reward config comes from `reward.custom_reward_function.reward_kwargs.reward_config`: a YAML
path or an inline mapping (RewardConfig fields); without it, RewardConfig's defaults apply.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from engine.config import from_dict, load_config
from engine.data.formats.tasks import verifier_for_task
from engine.paths import repo_path
from engine.verifiers import RewardConfig, compute_reward

# Always present in the result (None when the row carries no such tag), so per-key lists line up.
DIFFICULTY_TAGS = ("bucket", "difficulty", "difficulty_scorer")


@functools.lru_cache(maxsize=8)
def _config_from_file(path: str) -> RewardConfig:
    # a repo-relative name (what uploaded verl jobs get) resolves against the checkout this entrypoint ships in
    return load_config(RewardConfig, repo_path(path))


def reward_config(spec: str | dict | RewardConfig | None) -> RewardConfig:
    if spec is None:
        return RewardConfig()
    if isinstance(spec, RewardConfig):
        return spec
    if isinstance(spec, (str, Path)):
        return _config_from_file(str(spec))
    return from_dict(RewardConfig, dict(spec), "reward_config.")


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def difficulty_tags(info: dict[str, Any]) -> dict[str, Any]:
    """bucket / difficulty score / scorer from extra_info: top-level keys or the `difficulty` JSON object."""
    tags: dict[str, Any] = {k: None for k in DIFFICULTY_TAGS}
    diff = _json(info.get("difficulty"))
    if isinstance(diff, dict):
        tags.update(bucket=diff.get("bucket"), difficulty=diff.get("score"), difficulty_scorer=diff.get("scorer"))
    elif isinstance(diff, (int, float)) and not isinstance(diff, bool):
        tags["difficulty"] = float(diff)
    if info.get("bucket") is not None:
        tags["bucket"] = str(info["bucket"])
    return tags


def compute_score(data_source: str, solution_str: str, ground_truth: str, extra_info: dict | None = None, **kwargs: Any) -> dict[str, Any]:
    info = dict(extra_info or {})
    task = info.get("task") or None
    verifier = info.get("verifier") or (verifier_for_task(task) if task else None)
    params = _json(info.get("verifier_params")) or {}
    if not isinstance(params, dict):
        params = {}
    if "progress" in kwargs:  # training progress for scheduled thresholds (V-Triune's rising IoU bar)
        params = {**params, "progress": float(kwargs["progress"])}
    cfg = reward_config(kwargs.get("reward_config"))
    out: dict[str, Any] = {"score": 0.0, "acc": 0.0, "format": 0.0, "iou": None, "verifier_score": 0.0, "pred": "", "reason": "", "unjudged": 0.0}
    if verifier is None:
        out.update(reason="no_verifier: extra_info carries neither verifier nor task", unjudged=1.0)
    else:
        try:
            r = compute_reward(solution_str, str(ground_truth), verifier, params, cfg, task)
        except KeyError as exc:  # unknown verifier name in the data
            out.update(reason=f"unknown_verifier: {exc}", unjudged=1.0)
        else:
            out.update(score=r.score, acc=r.acc, format=r.format, iou=r.iou, verifier_score=r.verifier_score, pred=r.pred,
                       reason=r.reason or r.format_reason, unjudged=float(bool(r.reason)))
    out.update(difficulty_tags(info))
    # verl keeps every returned key in its rollout dump (trainer.rollout_data_dir): the id maps a rollout
    # back to its sample for pass rates (rl/grpo/rollout_log.py); None for rows without a gradus id.
    out["sample_id"] = None if info.get("id") is None else str(info["id"])
    return out
