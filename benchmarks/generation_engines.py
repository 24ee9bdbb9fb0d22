"""Batch generation throughput: `gradus eval`'s sampling on the vLLM backend, median of fresh runs.

Each repeat is a fresh process (a fresh Ray session and a fresh engine): `run_eval` with one
model (the embedded default) on the same rows (the first `--items` of the test split's stable
sha256 order), `--n` seeded draws per item at temperature 0.7. Reported per repeat: the model's
wall time (engine start-up included, as a user pays it), draws per second over that wall time,
and a digest of every item's outputs, so two engines compared on the same rows can be seen to
draw the same texts. The median of the repeats goes into benchmarks/results/generation_engines.json
under `--label` (e.g. `actor` for the per-actor VLLMBackend path, `ray_data_llm` for the
`ray.data.llm` processor), with the commit and the machine's load at the start.
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


def one_run(items: int, n: int, out: Path) -> dict:
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
    cfg.wandb.mode = "disabled"
    started = time.time()
    summary = run_eval(cfg)
    wall = time.time() - started
    rows = pd.read_parquet(out / "m" / "scores.parquet").sort_values("id")
    digest = hashlib.sha256(json.dumps([[r.id, list(r.outputs)] for r in rows.itertuples()]).encode()).hexdigest()[:16]
    model_wall = summary["models"]["m"]["wall_s"]
    draws = summary["models"]["m"]["draws"]
    return {"job_wall_s": round(wall, 1), "model_wall_s": model_wall, "draws": draws, "draws_per_s": round(draws / model_wall, 3),
            "accuracy": summary["models"]["m"]["accuracy"], "outputs_digest": digest}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--label", required=True, help="results key, e.g. actor or ray_data_llm")
    parser.add_argument("--items", type=int, default=32)
    parser.add_argument("--n", type=int, default=4, help="seeded draws per item")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "generation_engines.json"))
    parser.add_argument("--one", default="", help=argparse.SUPPRESS)  # internal: run once into this folder, print JSON
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(one_run(args.items, args.n, Path(args.one))), flush=True)
        return
    runs = []
    load = os.getloadavg()[0]
    for _ in range(args.repeats):
        run_load = round(os.getloadavg()[0], 2)  # this machine is shared: the load says how comparable the runs are
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, __file__, "--label", args.label, "--items", str(args.items), "--n", str(args.n), "--one", tmp]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"run failed ({done.returncode}): {done.stderr[-3000:]}")
            line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")][-1]
            runs.append(json.loads(line[len("RESULT "):]) | {"load_average_at_start": run_load})
            print(runs[-1], flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    record = {args.label: {
        "rows": {"items": args.items, "draws_per_item": args.n, "split": "test (embedded default corpus)", "temperature": 0.7},
        "median_model_wall_s": statistics.median(r["model_wall_s"] for r in runs),
        "median_draws_per_s": statistics.median(r["draws_per_s"] for r in runs),
        "runs": runs,
        "commit": commit or "unknown",
        "load_average_at_start": round(load, 2),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }}
    path = Path(args.out)
    merge_results(path, record)


if __name__ == "__main__":
    main()
