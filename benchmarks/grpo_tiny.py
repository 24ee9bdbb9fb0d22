"""Benchmark: the single-machine GRPO backend (TRL) raises mean reward on the embedded default.

Writes benchmarks/results/grpo_tiny.json with:
- reward_first / reward_last: mean training reward (compute_score's score, configs/reward/boxed.yaml)
  over the first / last `reward_window` steps of the seed-0 run (reward_window = clamp(steps // 5, 1, 10));
  steps, wall_s (whole run: data export, training, save), step_s_mean;
- noise: what a window mean varies by with no learning at all. The *initial* model samples
  `repeats` independent draws shaped exactly like one reward window (reward_window steps x
  prompts_per_step random training prompts x group_size responses at the training temperature),
  scored through the same entrypoint; `window_sd` is the std of those window means, and the
  difference of two independent windows has sd sqrt(2) * window_sd. `beyond_noise` says whether
  reward_last - reward_first > 2 * sqrt(2) * window_sd (two standard deviations of the difference);
- seeds: the same run with other seeds (their reward_first / reward_last / margin), the
  run-to-run spread of the whole training outcome;
- heldout: before/after on the test split of the trained task families: greedy accuracy per task
  (engine.evaluation, HF backend) and the mean sampled reward at the training temperature
  (repeats x one response per prompt; mean and std over repeats);
- machine, config, curve (reward per step) and the files the run left (outputs/bench/...).
Run: .venv/bin/python benchmarks/grpo_tiny.py [--steps N] [--seeds 0 1] [--repeats 8]
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import random
import statistics
import time
from pathlib import Path

from common import merge_results

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "configs" / "grpo" / "tiny_trl.yaml"


class Sampler:
    """Sampling exactly as TRL's GRPOTrainer samples on its transformers path (top_k=0, the image token
    suppressed, the job's temperature / top_p / max_new_tokens), so noise windows match training ones.
    (gradus's HF backend leaves transformers' default top_k=50 on when sampling: not the same law.)"""

    def __init__(self, model_path: Path, temperature: float, top_p: float, max_new_tokens: int, batch: int = 64):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.torch = torch
        self.processor = AutoProcessor.from_pretrained(str(model_path), local_files_only=True, padding_side="left")
        self.processor.tokenizer.padding_side = "left"
        self.model = AutoModelForImageTextToText.from_pretrained(str(model_path), local_files_only=True, dtype=torch.float32).eval()
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
            inputs = self.processor(text=texts, images=imgs or None, return_tensors="pt", padding=True)
            torch.manual_seed(seed + start)
            with torch.inference_mode():
                ids = self.model.generate(**inputs, **self.kw)
            out.extend(self.processor.batch_decode(ids[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True))
        return out


def sampled_rewards(sampler: Sampler, rows, picks: list[list[int]], group: int, seed: int, reward_cfg: str) -> list[float]:
    """Mean reward per pick list: each row index in a list gets `group` sampled responses, scored by compute_score."""
    from engine.data.images import ImagePolicy
    from engine.data.sample import Message
    from engine.model.chat import to_chat
    from rl.grpo.trl_dataset import decode_images
    from rl.reward import compute_score

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
        scores = [compute_score(row["data_source"], t, row["reward_model"]["ground_truth"], row["extra_info"], reward_config=reward_cfg)["score"]
                  for t, row in zip(texts, meta)]
        means.append(sum(scores) / len(scores))
    return means


def greedy_backend(model_path: Path, max_new_tokens: int):
    from engine.generation.base import GenerationConfig
    from engine.generation.hf_backend import HFBackend

    return HFBackend(GenerationConfig(backend="hf", model_path=str(model_path), temperature=0.0,
                                      max_new_tokens=max_new_tokens, hf_batch_size=64, device="cpu"))


def heldout(model_path: Path, test_rows, test_samples, cfg, repeats: int, seed: int, reward_cfg: str) -> dict:
    from engine.evaluation import evaluate_samples

    a, n_tok = cfg.algorithm, cfg.data.max_response_length
    greedy = evaluate_samples(greedy_backend(model_path, n_tok), test_samples)
    every = [list(range(len(test_rows)))] * repeats
    sampled = sampled_rewards(Sampler(model_path, a.temperature, a.top_p, n_tok), test_rows, every, 1, seed, reward_cfg)
    return {
        "greedy_acc": round(greedy.overall_acc, 4),
        "greedy_acc_per_task": {k: round(v, 4) for k, v in greedy.per_family.items()},
        "sampled_reward_mean": round(statistics.mean(sampled), 4),
        "sampled_reward_per_repeat": [round(x, 4) for x in sampled],
        "sampled_reward_sd_over_repeats": round(statistics.stdev(sampled), 4) if len(sampled) > 1 else None,
        "n": greedy.n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=0, help="override algorithm.steps (default: the config's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="training seeds; the first is the headline run")
    parser.add_argument("--repeats", type=int, default=8, help="initial-model windows sampled for the noise estimate")
    parser.add_argument("--heldout-per-task", type=int, default=100)
    parser.add_argument("--out-dir", default=str(REPO / "outputs" / "bench" / "grpo_tiny"))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "grpo_tiny.json"))
    args = parser.parse_args()

    import torch

    from engine import __version__
    from engine.config import load_config, to_dict
    from engine.data.shards import iter_samples
    from rl.grpo.config import GrpoJobConfig
    from rl.grpo.sources import parse_source, repo_path, resolve_data, resolve_model
    from rl.grpo.trl_backend import run_trl_grpo
    from rl.grpo.trl_dataset import read_verl_rows

    overrides = [f"algorithm.steps={args.steps}"] if args.steps else []
    base_cfg = load_config(GrpoJobConfig, CONFIG, overrides)
    torch.set_num_threads(base_cfg.trl.torch_threads or 1)
    a = base_cfg.algorithm
    reward_cfg = str(repo_path(base_cfg.reward.config))
    out_root = Path(args.out_dir)
    started = time.time()

    runs = []
    for seed in args.seeds:
        cfg = load_config(GrpoJobConfig, CONFIG, overrides + [f"seed={seed}", f"output_dir={out_root / f'seed{seed}'}"])
        t0 = time.time()
        summary = run_trl_grpo(cfg)
        runs.append({"seed": seed, "summary": summary, "run_s": round(time.time() - t0, 1)})
    head = runs[0]["summary"]
    initial_model, model_id = resolve_model(base_cfg.model_path)
    final_model = Path(head["output_model"])

    # Noise: initial model, windows shaped like the training windows, same prompts pool.
    k = head["reward_window"]
    train_rows = read_verl_rows(Path(head["train_data"]))
    rng = random.Random(12345)
    picks = [rng.sample(range(len(train_rows)), min(len(train_rows), k * a.prompts_per_step)) for _ in range(args.repeats)]
    t0 = time.time()
    windows = sampled_rewards(Sampler(initial_model, a.temperature, a.top_p, base_cfg.data.max_response_length), train_rows, picks,
                              a.group_size, 7, reward_cfg)
    noise_s = time.time() - t0
    window_sd = statistics.stdev(windows)
    diff_sd = math.sqrt(2) * window_sd
    margin = head["reward_last"] - head["reward_first"]

    # Held-out: test split of the trained families, before and after.
    src, sel = parse_source(base_cfg.data.train)
    test_spec = src.rsplit(":", 1)[0] + ":test" + f"?tasks={','.join(sel.tasks)}&per_task={args.heldout_per_task}"
    test_dir = resolve_data(test_spec, out_root / "heldout", "test")
    from rl.grpo.data import verl_parquet

    test_file = verl_parquet(str(test_dir), out_root / "heldout", "test")
    test_rows = read_verl_rows(test_file)
    test_samples = list(iter_samples(test_dir))
    t0 = time.time()
    before = heldout(initial_model, test_rows, test_samples, base_cfg, 4, 11, reward_cfg)
    after = heldout(final_model, test_rows, test_samples, base_cfg, 4, 11, reward_cfg)
    heldout_s = time.time() - t0

    rows = _metrics(Path(head["files"]["metrics"]))
    curve = [r["reward"] for r in rows]
    window_mean = lambda key, part: round(statistics.mean(r[key] for r in part if key in r), 4)  # noqa: E731
    sharpening = {f"{key}_{end}": window_mean(key, part) for key in ("entropy", "format", "completion_length")
                  for end, part in (("first", rows[:k]), ("last", rows[-k:]))}
    record = {
        "reward_first": head["reward_first"],
        "reward_last": head["reward_last"],
        "steps": head["steps"],
        "wall_s": head["wall_s"],
        "reward_window": k,
        "reward_definition": "mean of TRL's per-step batch-mean reward (compute_score score, configs/reward/boxed.yaml: 1 if the "
                             "boxed answer verifies, else 0) over the first / last reward_window = clamp(steps // 5, 1, 10) steps",
        "step_s_mean": head["step_s_mean"],
        "margin": round(margin, 4),
        "noise": {
            "method": f"initial model, {args.repeats} independent windows of {k} steps x {a.prompts_per_step} random training prompts x "
                      f"{a.group_size} responses at T={a.temperature}; sd of the window mean; a difference of two windows has sd sqrt(2) x that",
            "window_means": [round(w, 4) for w in windows],
            "window_mean": round(statistics.mean(windows), 4),
            "window_sd": round(window_sd, 4),
            "diff_sd": round(diff_sd, 4),
            "wall_s": round(noise_s, 1),
        },
        "beyond_noise": margin > 2 * diff_sd,
        "margin_in_diff_sd": round(margin / diff_sd, 2) if diff_sd > 0 else None,
        "seeds": [{"seed": r["seed"], "reward_first": r["summary"]["reward_first"], "reward_last": r["summary"]["reward_last"],
                   "margin": round(r["summary"]["reward_last"] - r["summary"]["reward_first"], 4),
                   "acc_first": r["summary"]["acc_first"], "acc_last": r["summary"]["acc_last"], "kl_last": r["summary"]["kl_last"],
                   "wall_s": r["summary"]["wall_s"]} for r in runs],
        "heldout": {"split": "test", "tasks": list(sel.tasks), "per_task": args.heldout_per_task,
                    "before": before, "after": after, "wall_s": round(heldout_s, 1)},
        "curve": [round(c, 4) for c in curve],
        "curve_windows": sharpening,
        "model_id": model_id,
        "model_path": str(initial_model),
        "config": str(CONFIG.relative_to(REPO)),
        "config_resolved": to_dict(base_cfg),
        "config_hash": head["config_hash"],
        "gradus_version": __version__,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "device": head["device"],
                    "torch_threads": base_cfg.trl.torch_threads, "note": "2-core CPU box shared with other jobs"},
        "files": {"run": str(Path(head["files"]["summary"]).parent), "reward_curve": head["files"]["reward_curve"]},
        "bench_wall_s": round(time.time() - started, 1),
    }
    merge_results(Path(args.out), record)


def _metrics(path: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


if __name__ == "__main__":
    main()
