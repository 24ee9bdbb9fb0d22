"""Batch generation throughput: `gradus eval`'s sampling on the vLLM backend, per runner, interleaved.

Each run is a fresh process (a fresh Ray session and a fresh engine): `run_eval` with one model
(the embedded default) on the same rows (the first `--items` of the test split's stable sha256
order), `--n` seeded draws per item at temperature 0.7, with `runner` set to one of `--runners`.
The runners alternate within each round (A B, A B, ...), so slow drift of a shared machine's load
lands on both; the claim is the per-round ratio (second runner over first, draws per second),
median over the rounds with its min-max range. Reported per run: the model's wall time (engine
start-up included, as a user pays it), draws per second over that wall time, and a digest of
every item's outputs, so the runners can be seen to draw the same texts. Results go to
benchmarks/results/generation_engines.json, one key per workload (`eval_<items>x<n>`), with the commit and the machine's load at each start.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import merge_results

REPO = Path(__file__).resolve().parent.parent


def one_run(runner: str, items: int, n: int, out: Path) -> dict:
    """One fresh `run_eval` in this process; its timing and an output digest."""
    import pandas as pd

    from engine.config import load_config
    from engine.paths import cache_root
    from pipelines.evaluate import EvalJobConfig, run_eval
    from rl.warmstart import WarmstartConfig, ensure_corpus, ensure_warmstart

    ws = load_config(WarmstartConfig, REPO / "configs" / "warmstart" / "tiny.yaml")
    model = ensure_warmstart(ws)
    corpus = ensure_corpus(ws.synth, cache_root(ws.cache_dir))
    cfg = load_config(EvalJobConfig, REPO / "configs" / "eval" / "default.yaml")
    cfg.input, cfg.output, cfg.models, cfg.limit, cfg.n, cfg.k = str(corpus / "test"), str(out), {"m": str(model)}, items, n, [1]
    cfg.wandb.mode, cfg.runner = "disabled", runner
    started = time.time()
    summary = run_eval(cfg)
    wall = time.time() - started
    rows = pd.read_parquet(out / "m" / "scores.parquet").sort_values("id")
    digest = hashlib.sha256(json.dumps([[r.id, list(r.outputs)] for r in rows.itertuples()]).encode()).hexdigest()[:16]
    model_wall = summary["models"]["m"]["wall_s"]
    draws = summary["models"]["m"]["draws"]
    return {"job_wall_s": round(wall, 1), "model_wall_s": model_wall, "draws": draws, "draws_per_s": round(draws / model_wall, 3),
            "accuracy": summary["models"]["m"]["accuracy"], "outputs_digest": digest}


def run_fresh(runner: str, items: int, n: int) -> dict:
    """One run in a fresh process, so each gets its own Ray session and engine start."""
    load = round(os.getloadavg()[0], 2)  # this machine is shared: the load says how comparable the runs are
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, __file__, "--runners", runner, "--items", str(items), "--n", str(n), "--one", tmp]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{runner} run failed ({done.returncode}): {done.stderr[-3000:]}")
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")][-1]
    result = json.loads(line[len("RESULT "):]) | {"runner": runner, "load_average_at_start": load}
    print(result, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runners", nargs="+", default=["actor", "ray_data_llm"], help="baseline first (EvalJobConfig.runner values)")
    parser.add_argument("--items", type=int, default=32)
    parser.add_argument("--n", type=int, default=4, help="seeded draws per item")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "generation_engines.json"))
    parser.add_argument("--one", default="", help=argparse.SUPPRESS)  # internal: run once into this folder, print JSON
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(one_run(args.runners[0], args.items, args.n, Path(args.one))), flush=True)
        return
    rounds = [[run_fresh(r, args.items, args.n) for r in args.runners] for _ in range(args.rounds)]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    record = {"rows": {"items": args.items, "draws_per_item": args.n, "split": "test (embedded default corpus)", "temperature": 0.7},
              "commit": commit or "unknown", "machine": f"{platform.machine()}, {os.cpu_count()} cores", "baseline": args.runners[0],
              "runners": {}, "rounds": rounds}
    for i, runner in enumerate(args.runners):
        runs = [rnd[i] for rnd in rounds]
        record["runners"][runner] = {"median_model_wall_s": statistics.median(r["model_wall_s"] for r in runs),
                                     "median_draws_per_s": statistics.median(r["draws_per_s"] for r in runs),
                                     "same_draws_every_run": len({r["outputs_digest"] for r in runs}) == 1}
        if i:
            ratios = [rnd[i]["draws_per_s"] / rnd[0]["draws_per_s"] for rnd in rounds]
            record["runners"][runner][f"draws_per_s_ratio_vs_{args.runners[0]}"] = {
                "median": round(statistics.median(ratios), 3), "min": round(min(ratios), 3), "max": round(max(ratios), 3),
                "per_round": [round(x, 3) for x in ratios]}
    record["same_draws_across_runners"] = len({r["outputs_digest"] for rnd in rounds for r in rnd}) == 1
    merge_results(Path(args.out), {f"eval_{args.items}x{args.n}": record})  # one key per workload size


if __name__ == "__main__":
    main()
