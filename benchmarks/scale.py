"""Benchmark P5: how a scoring stage scales with its actor pool on a simulated multi-node cluster.

Cluster (tests/support/simcluster.py): head (1 CPU) + 2 worker nodes (2 CPUs, {"fake_gpu": 2},
accelerator_type:SIM each), all on this machine. The stage is CMAB on the warm tiny model (HF,
float32, one OpenMP thread per actor), reusing given answers for every row (no generation), so
each row costs one lean-attention forward. For each pool size N in --counts (default 1, 2, 4):

- real: `run_cmab` through the simulated-cluster driver, pool min = max = N, SPREAD over the fake
  GPUs, Ray Data waiting for all N actors before dispatching (start-up is not in the rate);
- noop (at --noop-counts, default 1 and 4): the same pipeline shape (read -> repartition -> actor
  pool -> driver writes parts/) with an actor that returns its batch's ids: what Ray Data itself
  costs per block.

Real runs go round-robin over the counts (--repeats rounds, default 2) and the fastest round per count
is kept (the mean of the rounds beside it): other processes share these cores, and interleaving
spreads their load over every count.

Throughput is the steady-state rate seen by the driver: rows of every part after the first,
divided by the time from the first part to the last (part files are written as blocks arrive).
Writes benchmarks/results/scale.json:
- throughput_rows_per_s per N, speedup_vs_1, efficiency per N (= speedup / N),
  scaling_efficiency = throughput_N / (N * throughput_1) at the largest N;
- scheduling_overhead_s_per_batch: seconds per block of the no-op pipeline at 1 actor (dispatch,
  block transfer, batching, result transfer, the driver's part write), next to the real stage's
  seconds per block and Ray Data's in-actor split (task wall time vs time in our function);
- the machine's load average around every run: other processes share these 2 cores.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import merge_results

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
PLACEMENT = {"resources": {"fake_gpu": 1}, "accelerator_type": "SIM", "spread": True}


class NoopActor:
    """Takes a batch of sample rows (images included) and returns their ids: no model, no work."""

    def __call__(self, batch):
        return batch[["id"]].assign(noop=True)


def noop_driver(spec_path: str) -> int:
    """The no-op job, run as a driver process on the simulated cluster (RAY_ADDRESS set)."""
    import pyarrow as pa
    import ray.data

    from engine.config import from_dict
    from engine.ray_session import init_ray
    from pipelines.generate import ActorPoolConfig
    from pipelines.placement import Placement, map_batches_kwargs
    from pipelines.resumable import ResumableOutput

    spec = json.loads(Path(spec_path).read_text())
    init_ray()
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.wait_for_min_actors_s = 900
    pool = ActorPoolConfig(min_actors=spec["actors"], max_actors=spec["actors"], num_cpus=0.5, batch_size=spec["batch_size"], omp_threads=1)
    ds = ray.data.read_parquet(spec["input"]).repartition(target_num_rows_per_block=spec["batch_size"])
    out = ds.map_batches(NoopActor, batch_format="pandas", **map_batches_kwargs(pool, from_dict(Placement, PLACEMENT)))
    schema = pa.schema([("id", pa.string()), ("noop", pa.bool_())])  # NoopActor's rows
    ResumableOutput(spec["out"], {"noop": spec["input"]}, schema).stream(out, spec["rows"], "noop")
    return 0


def steady_rate(out: Path) -> dict:
    """Rows per second between the first and the last part the driver wrote, from the part files."""
    import pyarrow.parquet as pq

    parts = sorted((out / "parts").glob("*.parquet"), key=lambda p: p.stat().st_mtime_ns)
    rows = [pq.ParquetFile(p).metadata.num_rows for p in parts]
    times = [p.stat().st_mtime_ns / 1e9 for p in parts]
    if len(parts) < 3:
        raise RuntimeError(f"{out}: {len(parts)} parts, too few for a rate")
    span = times[-1] - times[0]
    return {"parts": len(parts), "rows": sum(rows), "span_s": round(span, 3), "rows_per_s": round(sum(rows[1:]) / span, 3),
            "s_per_block": round(span / (len(parts) - 1), 4)}


def run_one(sim, kind: str, n: int, spec: dict, work: Path) -> dict:
    from tests.support.simcluster import start_driver

    out = work / f"{kind}-{n}"
    shutil.rmtree(out, ignore_errors=True)
    stats = work / f"{kind}-{n}-stats.json"
    if kind == "real":
        args = ["score", "cmab", "--config", str(REPO / "configs" / "cmab" / "tiny.yaml"), "--placement", json.dumps(PLACEMENT),
                "--stats", str(stats), "--wait-min-actors-s", "900", f"input={spec['input']}", f"output={out}",
                f"model_path={spec['model']}", f"responses.pism_scores={spec['pism']}", "heatmaps.per_task=0", "wandb.mode=disabled",
                f"actors.batch_size={spec['batch_size']}", f"rows_per_block={spec['batch_size']}", f"actors.min_actors={n}",
                f"actors.max_actors={n}", "actors.num_cpus=0.5", "actors.omp_threads=1"]
        cmd = None
    else:
        job = work / f"noop-{n}.json"
        job.write_text(json.dumps({**spec, "actors": n, "out": str(out)}))
        args, cmd = None, [sys.executable, str(Path(__file__).resolve()), "--noop-driver", str(job)]
    load_before = os.getloadavg()
    started = time.time()
    log = work / f"{kind}-{n}.log"
    if cmd is None:
        proc = start_driver(sim, args, log)
    else:
        import subprocess

        proc = subprocess.Popen(cmd, cwd=REPO, env=sim.driver_env(), stdout=open(log, "w"), stderr=subprocess.STDOUT)
    if proc.wait(timeout=1800):
        raise RuntimeError(f"{kind} N={n} failed:\n{log.read_text()[-3000:]}")
    record = {"kind": kind, "actors": n, "wall_s": round(time.time() - started, 1), **steady_rate(out),
              "load_avg_1m": [round(load_before[0], 2), round(os.getloadavg()[0], 2)]}
    if stats.exists():
        (stage,) = json.loads(stats.read_text())["stages"]
        record |= {k: stage[k] for k in ("nodes_used", "task_wall_s_mean", "udf_s_mean") if k in stage}
    print(json.dumps(record), flush=True)
    return record


def summarize(runs: list[dict], counts: list[int], noop_counts: list[int], meta: dict) -> dict:
    """The results record from the runs. Per pool size the fastest round counts (`throughput_rows_per_s`:
    the round least slowed by other processes on the shared cores); the mean over rounds is kept beside it."""

    def of(kind: str, n: int) -> list[dict]:
        return [r for r in runs if r["kind"] == kind and r["actors"] == n]

    def eff(rate: dict) -> dict:
        return {str(n): round(rate[n] / (n * rate[counts[0]]), 3) for n in counts}

    real = {n: max(of("real", n), key=lambda r: r["rows_per_s"]) for n in counts}
    noop = {n: max(of("noop", n), key=lambda r: r["rows_per_s"]) for n in noop_counts}
    best = {n: real[n]["rows_per_s"] for n in counts}
    mean = {n: round(sum(r["rows_per_s"] for r in of("real", n)) / len(of("real", n)), 3) for n in counts}
    top = max(counts)
    return {
        "scaling_efficiency": eff(best)[str(top)],
        "p5": {
            "actors": counts,
            "throughput_rows_per_s": {str(n): best[n] for n in counts},
            "speedup_vs_1": {str(n): round(best[n] / best[counts[0]], 3) for n in counts},
            "efficiency": eff(best),
            "throughput_all_rounds": {str(n): [r["rows_per_s"] for r in of("real", n)] for n in counts},
            "throughput_mean_of_rounds": {str(n): mean[n] for n in counts},
            "efficiency_mean_of_rounds": eff(mean),
            "ceiling_efficiency_at_max": round(min(top, meta["machine"]["cpus"] or 1) / top, 3),
            "noop_throughput_rows_per_s": {str(n): noop[n]["rows_per_s"] for n in noop_counts},
            "scheduling_overhead_s_per_batch": noop[counts[0]]["s_per_block"],
            "real_s_per_batch_at_1": real[counts[0]]["s_per_block"],
            "overhead_share_at_1": round(noop[counts[0]]["s_per_block"] / real[counts[0]]["s_per_block"], 3),
            "in_actor_batching_s_per_batch": {str(n): round(real[n]["task_wall_s_mean"] - real[n]["udf_s_mean"], 4)
                                              for n in counts if "udf_s_mean" in real[n]},
            **meta,
            "runs": runs,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="1,2,4")
    parser.add_argument("--noop-counts", default="1,4", help="pool sizes the no-op pipeline runs at")
    parser.add_argument("--repeats", type=int, default=2, help="rounds over --counts, interleaved (1,2,4,1,2,4): the fastest round per count is kept")
    parser.add_argument("--rows", type=int, default=600, help="rows of the test split (600 = all of it)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "scale.json"))
    parser.add_argument("--noop-driver", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.noop_driver:
        sys.exit(noop_driver(args.noop_driver))

    import pyarrow as pa
    import pyarrow.parquet as pq

    from engine.config import load_config
    from engine.data.response import format_response
    from engine.data.sample import SAMPLE_SCHEMA
    from engine.data.shards import shard_paths
    from tests.support.simcluster import NodeSpec, SimulatedCluster
    from engine.paths import cache_root
    from rl.warmstart import WarmstartConfig, ensure_corpus, ensure_warmstart

    counts = [int(c) for c in args.counts.split(",")]
    noop_counts = [int(c) for c in args.noop_counts.split(",")] if args.noop_counts else []
    ws = load_config(WarmstartConfig, REPO / "configs" / "warmstart" / "tiny.yaml")
    model = ensure_warmstart(ws)
    corpus = ensure_corpus(ws.synth, cache_root(ws.cache_dir))
    rows = []
    for path in shard_paths(corpus / "test"):
        rows += pq.read_table(path).to_pylist()
    rows = rows[: args.rows]
    work = Path(tempfile.mkdtemp(prefix="gradus-scale-"))
    (work / "in").mkdir()
    for i in range(0, len(rows), 32):
        pq.write_table(pa.Table.from_pylist(rows[i : i + 32], schema=SAMPLE_SCHEMA), work / "in" / f"part-{i:05d}.parquet")
    # Every row gets a response to score (its gold answer in the model's answer format): one forward per row, no generation.
    pq.write_table(pa.table({"id": [r["id"] for r in rows], "unsolved": [False] * len(rows), "error": [None] * len(rows),
                             "clean_response": [format_response(r["answer"]) for r in rows]}), work / "pism.parquet")
    spec = {"input": str(work / "in"), "pism": str(work / "pism.parquet"), "model": str(model), "rows": len(rows),
            "batch_size": args.batch_size}

    t0 = time.time()
    sim = SimulatedCluster(workers=2, worker=NodeSpec(num_cpus=2, resources={"fake_gpu": 2}))
    cluster_start_s = round(time.time() - t0, 1)
    runs = []
    try:
        for round_ in range(args.repeats):  # interleaved, so a change in the machine's load hits every count alike
            for n in counts:
                runs.append(run_one(sim, "real", n, spec, work) | {"round": round_})
        for n in noop_counts:
            runs.append(run_one(sim, "noop", n, spec, work))
    finally:
        sim.shutdown()
        shutil.rmtree(work, ignore_errors=True)

    meta = {"rows": len(rows), "batch_size": args.batch_size, "repeats": args.repeats,
            "cluster": {"head_cpus": 1, "workers": 2, "worker_cpus": 2, "worker_resources": {"fake_gpu": 2, "accelerator_type:SIM": 1},
                        "actor": {"num_cpus": 0.5, "omp_threads": 1, **PLACEMENT}, "start_s": cluster_start_s},
            "model_path": str(model),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
            "wall_s": round(time.time() - t0, 1)}
    record = summarize(runs, counts, noop_counts, meta)
    merge_results(Path(args.out), record)


if __name__ == "__main__":
    main()
