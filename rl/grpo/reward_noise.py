"""Is a GRPO run's reward rise beyond noise? The training reward's margin over sampling noise.

A run's `reward_first` / `reward_last` (rl/grpo/trl_backend.py) are means over a window of
`reward_window` steps. What such a window mean varies by with no learning at all: the run's
*starting* model samples `repeats` independent windows shaped exactly like a training window
(window steps x prompts_per_step random training prompts x group_size responses, at the training
temperature / top_p / response length, with TRL's sampling law), scored by the run's own reward
entrypoint. `window_sd` is the sd of those window means; a difference of two independent windows
has sd `diff_sd` = sqrt(2) x window_sd, and `margin_in_diff_sd` = (reward_last - reward_first) /
diff_sd is the rise in noise sds (`beyond_noise`: more than two of them).

One implementation for every caller: benchmarks/grpo_tiny.py and the main job's training arms
(pipelines/demo, `train_reward_margin_sd`).
"""
from __future__ import annotations

import math
import random
import statistics
import time
from pathlib import Path
from typing import Any, Sequence

from engine.paths import repo_path
from rl.grpo.config import GrpoJobConfig

PICK_SEED = 12345  # which training prompts each noise window draws
SAMPLE_SEED = 7  # generation seed of the noise windows


class Sampler:
    """Sampling exactly as TRL's GRPOTrainer samples on its transformers path (top_k=0, the image token
    suppressed, the job's temperature / top_p / max_new_tokens), so noise windows match training ones.
    (gradus's HF backend leaves transformers' default top_k=50 on when sampling: not the same law.)"""

    def __init__(self, model_path: Path, temperature: float, top_p: float, max_new_tokens: int, batch: int = 64, device: str = "cpu"):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.torch = torch
        self.device = device
        self.processor = AutoProcessor.from_pretrained(str(model_path), local_files_only=True, padding_side="left")
        self.processor.tokenizer.padding_side = "left"
        self.model = AutoModelForImageTextToText.from_pretrained(str(model_path), local_files_only=True, dtype=torch.float32).to(device).eval()
        self.kw = dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=0, max_new_tokens=max_new_tokens,
                       suppress_tokens=[self.model.config.image_token_id], pad_token_id=self.processor.tokenizer.pad_token_id,
                       eos_token_id=self.processor.tokenizer.eos_token_id)
        self.batch = batch

    def generate(self, chats: list, images: list, seed: int) -> list[str]:
        torch = self.torch
        out = []
        for start in range(0, len(chats), self.batch):
            texts = [self.processor.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in chats[start : start + self.batch]]
            imgs = [i for group in images[start : start + self.batch] for i in group]
            inputs = self.processor(text=texts, images=imgs or None, return_tensors="pt", padding=True).to(self.device)
            torch.manual_seed(seed + start)
            with torch.inference_mode():
                ids = self.model.generate(**inputs, **self.kw)
            out.extend(self.processor.batch_decode(ids[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True))
        return out


def scorer(cfg: GrpoJobConfig):
    """The job's reward entrypoint with its RewardConfig, as training calls it (rl/grpo/trl_reward.py)."""
    from rl.grpo.trl_reward import VerlRewardFunction, load_entrypoint

    reward_cfg = str(repo_path(cfg.reward.config)) if cfg.reward.config else None
    return VerlRewardFunction(load_entrypoint(str(repo_path(cfg.reward.path)) if cfg.reward.path else "", cfg.reward.name), reward_cfg)


def sampled_rewards(sampler: Sampler, rows: Sequence[dict], picks: list[list[int]], group: int, seed: int, score) -> list[float]:
    """Mean reward per pick list: each row index in a list gets `group` sampled responses, scored by `score`
    (a VerlRewardFunction: `scorer(cfg)`)."""
    from engine.data.images import ImagePolicy
    from engine.data.sample import Message
    from engine.model.chat import to_chat
    from rl.grpo.trl_dataset import decode_images

    policy = ImagePolicy()
    means = []
    for rep, idx in enumerate(picks):
        chats, images, meta = [], [], []
        for i in idx:
            row = rows[i]
            imgs = decode_images(row["images"], policy)
            chat = to_chat([Message(m["role"], m["content"]) for m in row["prompt"]], imgs)
            for _ in range(group):
                chats.append(chat)
                images.append(imgs)
                meta.append(row)
        texts = sampler.generate(chats, images, seed * 100_003 + rep * 1_009)
        scores = [float(score.score_one(row["data_source"], t, str(row["reward_model"]["ground_truth"]), row["extra_info"], None)["score"])
                  for t, row in zip(texts, meta)]
        means.append(sum(scores) / len(scores))
    return means


def noise_windows(cfg: GrpoJobConfig, model_path: Path, rows: Sequence[dict], window: int, repeats: int) -> dict[str, Any]:
    """`repeats` window means of the starting model (module docstring, full precision), with how they were drawn."""
    if repeats < 2:
        raise ValueError("noise_windows: need repeats >= 2 to estimate an sd")
    from rl.grpo.trl_backend import resolve_device

    a = cfg.algorithm
    rng = random.Random(PICK_SEED)
    per_window = min(len(rows), window * a.prompts_per_step)
    picks = [rng.sample(range(len(rows)), per_window) for _ in range(repeats)]
    started = time.time()
    sampler = Sampler(model_path, a.temperature, a.top_p, cfg.data.max_response_length, device=resolve_device(cfg.trl.device))
    means = sampled_rewards(sampler, rows, picks, a.group_size, SAMPLE_SEED, scorer(cfg))
    return {
        "method": f"starting model, {repeats} independent windows of {window} steps x {a.prompts_per_step} random training prompts x "
                  f"{a.group_size} responses at T={a.temperature}; sd of the window mean; a difference of two windows has sd sqrt(2) x that",
        "window_means": means,
        "generations": repeats * per_window * a.group_size,
        "wall_s": round(time.time() - started, 1),
    }


def reward_margin(reward_first: float, reward_last: float, window_means: Sequence[float]) -> dict[str, Any]:
    """reward_last - reward_first against the sd of a difference of two noise windows (module docstring)."""
    window_sd = statistics.stdev(window_means)
    diff_sd = math.sqrt(2) * window_sd
    margin = reward_last - reward_first
    return {
        "margin": round(margin, 4),
        "window_mean": round(statistics.mean(window_means), 4),
        "window_sd": round(window_sd, 4),
        "diff_sd": round(diff_sd, 4),
        "margin_in_diff_sd": round(margin / diff_sd, 2) if diff_sd > 0 else None,
        "beyond_noise": margin > 2 * diff_sd,
    }


def measure_noise(cfg: GrpoJobConfig, summary: dict[str, Any], repeats: int) -> dict[str, Any]:
    """A finished TRL run (its config and summary.json) -> noise windows from its starting model + the margin.

    The starting model, training parquet and window are the run's own (summary: model_path,
    train_data, reward_window), so the noise is shaped exactly like the run's reward windows."""
    from rl.grpo.trl_dataset import read_verl_rows

    if summary.get("reward_first") is None or summary.get("reward_last") is None:
        raise ValueError("measure_noise: the run logged no reward (no training step)")
    rows = read_verl_rows(Path(summary["train_data"]))
    noise = noise_windows(cfg, Path(summary["model_path"]), rows, int(summary["reward_window"]), repeats)
    margin = reward_margin(summary["reward_first"], summary["reward_last"], noise["window_means"])
    return {**margin, "noise": {**noise, "window_means": [round(w, 4) for w in noise["window_means"]]}}
