"""Benchmark: the single-machine GRPO backend (TRL) raises mean reward on the embedded default.

Writes benchmarks/results/grpo_tiny.json with:
- reward_first / reward_last: mean training reward (compute_score's score, configs/reward/boxed.yaml)
  over the first / last `reward_window` steps of the seed-0 run (reward_window = clamp(steps // 5, 1, 10));
  steps, wall_s (whole run: data export, training, save), step_s_mean;
- noise: what a window mean varies by with no learning at all. The *initial* model samples
  `repeats` independent draws shaped exactly like one reward window (reward_window steps x
  prompts_per_step random training prompts x group_size responses at the training temperature),
  scored through the same entrypoint; `window_sd` is the std of those window means, and the
  difference of two independent windows has sd sqrt(2) * window_sd (rl/grpo/reward_noise.py, the
  computation the main job's train_reward_margin_sd uses too). `beyond_noise` says whether
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
import os
import platform
import statistics
import time
from pathlib import Path

from common import merge_results

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "configs" / "grpo" / "tiny_trl.yaml"


def greedy_backend(model_path: Path, max_new_tokens: int):
    from engine.generation.base import GenerationConfig
    from engine.generation.hf_backend import HFBackend

    return HFBackend(GenerationConfig(backend="hf", model_path=str(model_path), temperature=0.0,
                                      max_new_tokens=max_new_tokens, hf_batch_size=64, device="cpu"))


def heldout(model_path: Path, test_rows, test_samples, cfg, repeats: int, seed: int) -> dict:
    from engine.evaluation import evaluate_samples
    from rl.grpo.reward_noise import Sampler, sampled_rewards, scorer

    a, n_tok = cfg.algorithm, cfg.data.max_response_length
    greedy = evaluate_samples(greedy_backend(model_path, n_tok), test_samples)
    every = [list(range(len(test_rows)))] * repeats
    sampled = sampled_rewards(Sampler(model_path, a.temperature, a.top_p, n_tok), test_rows, every, 1, seed, scorer(cfg))
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
    from rl.sources import parse_source, resolve_data, resolve_model
    from rl.grpo.reward_noise import measure_noise
    from rl.grpo.trl_backend import run_trl_grpo
    from rl.grpo.trl_dataset import read_verl_rows

    overrides = [f"algorithm.steps={args.steps}"] if args.steps else []
    base_cfg = load_config(GrpoJobConfig, CONFIG, overrides)
    torch.set_num_threads(base_cfg.trl.torch_threads or 1)
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

    # Noise: initial model, windows shaped like the training windows, same prompts pool (rl/grpo/reward_noise.py).
    k = head["reward_window"]
    margin = measure_noise(base_cfg, head, args.repeats)

    # Held-out: test split of the trained families, before and after.
    src, sel = parse_source(base_cfg.data.train)
    test_spec = src.rsplit(":", 1)[0] + ":test" + f"?tasks={','.join(sel.tasks)}&per_task={args.heldout_per_task}"
    test_dir = resolve_data(test_spec, out_root / "heldout", "test")
    from rl.grpo.data import verl_parquet

    test_file = verl_parquet(str(test_dir), out_root / "heldout", "test")
    test_rows = read_verl_rows(test_file)
    test_samples = list(iter_samples(test_dir))
    t0 = time.time()
    before = heldout(initial_model, test_rows, test_samples, base_cfg, 4, 11)
    after = heldout(final_model, test_rows, test_samples, base_cfg, 4, 11)
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
        "margin": margin["margin"],
        "noise": {
            "method": margin["noise"]["method"],
            "window_means": margin["noise"]["window_means"],
            "window_mean": margin["window_mean"],
            "window_sd": margin["window_sd"],
            "diff_sd": margin["diff_sd"],
            "wall_s": margin["noise"]["wall_s"],
        },
        "beyond_noise": margin["beyond_noise"],
        "margin_in_diff_sd": margin["margin_in_diff_sd"],
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
