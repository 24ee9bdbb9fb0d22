"""Benchmark: the main job (`make demo`) end to end on the embedded default (issue 9).

Writes benchmarks/results/demo.json with:
- wall_s: `gradus demo` with configs/demo.yaml as shipped (seed 0), from an empty out_dir, the
  warm-started model already cached (its one-time build is `warmstart_s`, read from the model's
  warmstart.json; the one-time environment install is `install_s`, written by `make env`);
- arms.<label>.acc: held-out accuracy (pass@1 over n seeded draws per item) of every arm, the mean
  over `--seeds`; se_items (SE over held-out items, seed 0), sd_seeds (across seeds), vs_base and
  vs_random (paired differences, seed 0, with paired SE); base.acc for the starting model;
- arms.<label>: the GRPO mechanism (informative_share, adv_abs_mean, zero_signal_share), the training
  reward's rise over noise (train_reward_margin_sd), generations.{scoring, training, total} and
  acc_gain_per_1k_generations; top level detectable_effect and best_arm_vs_base_in_se (the demo
  summary's fields, defined in pipelines/demo/measures.py);
- spread: the extra seeds' run (same out_dir: scoring, store and selections are reused through the
  demo's ledger, only the new seeds' arms train and get evaluated) and its wall time.
`--from-run DIR` takes the seed-0 run from a finished `gradus demo` out_dir (made with configs/demo.yaml
as shipped, from an empty out_dir: its summary.json holds the wall time) instead of running it again.
Run: .venv/bin/python benchmarks/demo.py [--seeds 0 1] [--out outputs/bench/demo] [--from-run outputs/demo]
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path

from common import merge_results

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    from engine.config import load_config
    from pipelines.demo import DemoConfig, run_demo
    from rl.warmstart import read_record

    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", default=str(REPO / "outputs" / "bench" / "demo"))
    parser.add_argument("--from-run", default="", help="a finished `gradus demo` out_dir (configs/demo.yaml, seed 0, from empty)")
    args = parser.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)

    cfg = load_config(DemoConfig, REPO / "configs" / "demo.yaml", [f"out_dir={out}"])
    if args.from_run:
        from engine.config import config_hash

        first = json.loads((Path(args.from_run) / "summary.json").read_text())
        if first["config_hash"] != config_hash(load_config(DemoConfig, REPO / "configs" / "demo.yaml")):
            raise SystemExit(f"--from-run {args.from_run}: not a run of configs/demo.yaml as shipped (config hash differs)")
        wall = first["wall_s"]
        shutil.copytree(args.from_run, out)  # the ledger then reuses every seed-0 stage for the spread run
    else:
        started = time.time()
        first = run_demo(cfg)
        wall = round(time.time() - started, 1)
    summary, spread_wall = first, None
    if args.seeds != cfg.seeds:
        cfg.seeds = list(args.seeds)
        started = time.time()
        summary = run_demo(cfg)
        spread_wall = round(time.time() - started, 1)

    install = REPO / ".venv" / ".gradus-install-s"
    warm = read_record(summary["model_path"])
    rows = {r["data"]: r for r in summary["comparison"]}
    record = {
        "wall_s": wall,
        "wall_definition": "gradus demo with configs/demo.yaml (seed 0) from an empty out_dir, warm-started model cached",
        "install_s": int(install.read_text()) if install.exists() else None,
        "warmstart_s": warm.get("wall_s"),
        "stage_wall_s": first["stage_wall_s"],
        "base": {"acc": rows["base (warm start)"]["acc"], "se_items": rows["base (warm start)"]["se_items"]},
        "arms": summary["arms"],
        "detectable_effect": summary["detectable_effect"],
        "best_arm": summary["best_arm"],
        "best_arm_vs_base_in_se": summary["best_arm_vs_base_in_se"],
        "seeds": summary["seeds"],
        "spread_wall_s": spread_wall,
        "reading": summary["reading"],
        "heldout_items": summary["eval"]["items"],
        "eval_n": summary["eval"]["n"],
        "selection_sizes": summary["select"]["selections"],
        "pism_buckets": summary["pism"].get("buckets"),
        "cmab_buckets": summary["cmab"].get("buckets"),
        "pism_cmab_spearman": summary["agreement"]["spearman_lambda_rho"],
        "model_id": summary["model_id"],
        "config_hash": first["config_hash"],
        "gradus_version": summary["gradus_version"],
        "machine": f"{platform.machine()} {platform.processor() or ''} nproc={__import__('os').cpu_count()}".strip(),
        "report": summary["report"],
    }
    merge_results(REPO / "benchmarks" / "results" / "demo.json", record)


if __name__ == "__main__":
    main()
