"""Run as a script by test_simulated_cluster_on_cpu.py: hosts a simulated 3-node Ray cluster and runs
two CMAB scoring jobs on it, each as its own driver process (RAY_ADDRESS = the simulated cluster).

Why a separate process: pytest's process is connected to the session Ray (tests/conftest.py), and
`ray.cluster_utils.Cluster` creates its nodes in the calling process; one process, one Ray.

Cluster: head (1 CPU, no fake GPU: it runs the driver's read/write tasks) + 2 workers (1 CPU,
{"fake_gpu": 2}, accelerator_type:SIM each). Actors ask for {"fake_gpu": 1}, accelerator_type SIM,
0.5 CPU, SPREAD, so they may only run on workers, and two of them could share one.

1. straight: pool min 1, max 2, dispatch as actors come (Ray Data's default). Uninterrupted: the
   reference output, and the pool's growth under load.
2. faulted: pool min 2, max 2; Ray Data waits for both actors before dispatching. Once both are
   alive and the first result block is on disk: SIGKILL one actor's worker process (a crash), and
   remove the node of the other (every process of that node killed: raylet, object store, workers).
   The job must finish on the remaining worker (both actors fit there) with the straight run's output.

Writes a JSON result: per job the driver's exit code, the actor watch (pool size over time, nodes
and pids per actor, restarts), Ray Data's stage stats, and for the faulted job what was killed when.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from tests.support.simcluster import ActorWatch, NodeSpec, SimulatedCluster, kill_process, start_driver  # noqa: E402

PLACEMENT = {"resources": {"fake_gpu": 1}, "accelerator_type": "SIM", "spread": True}


def _args(spec: dict, out: Path, stats: Path, min_actors: int, max_actors: int, wait_min: bool) -> list[str]:
    args = ["score", "cmab", "--config", str(REPO / "configs" / "cmab" / "tiny.yaml"), "--placement", json.dumps(PLACEMENT),
            "--stats", str(stats), f"input={spec['input']}", f"output={out}", f"model_path={spec['model']}",
            f"responses.pism_scores={spec['pism']}", "generation.temperature=0.0", "responses.draws=1",  # greedy fallback
            "heatmaps.per_task=0", "wandb.mode=disabled", "actors.batch_size=2", "rows_per_block=2",
            f"actors.min_actors={min_actors}", f"actors.max_actors={max_actors}", "actors.num_cpus=0.5", "actors.omp_threads=1"]
    return args + (["--wait-min-actors-s", "900"] if wait_min else [])


def _parts(out: Path) -> int:
    return len(list((out / "parts").glob("*.parquet"))) if (out / "parts").exists() else 0


def run_job(sim: SimulatedCluster, spec: dict, name: str, min_actors: int, max_actors: int, faults: bool) -> dict:
    work = Path(spec["work"])
    out, stats, log = work / name, work / f"{name}-stats.json", work / f"{name}-driver.log"
    watch = ActorWatch(sim)
    started = time.time()
    proc = start_driver(sim, _args(spec, out, stats, min_actors, max_actors, wait_min=faults), log)
    record: dict = {"faults": []}
    deadline = started + spec.get("job_timeout_s", 900)
    while proc.poll() is None and time.time() < deadline:
        if faults and not record["faults"]:
            alive = {aid: a for aid, a in watch.poll().items() if a["state"] == "ALIVE"}
            if len(alive) >= 2 and _parts(out) >= 1:
                (x, ax), (y, ay) = sorted(alive.items())[:2]
                parts_before = _parts(out)
                kill_process(ax["pid"])  # an actor crash
                sim.remove_worker(ay["node_id"])  # a node failure (the other actor's node)
                record["faults"] = [
                    {"kind": "actor_sigkill", "actor": x, "node": ax["node_id"], "pid": ax["pid"]},
                    {"kind": "node_removed", "actor": y, "node": ay["node_id"]},
                ]
                record |= {"parts_at_fault": parts_before, "finished_at_fault": (out / "scores.parquet").exists(),
                           "alive_at_fault": {aid: a["node_id"] for aid, a in alive.items()}}
        time.sleep(0.2)
    if proc.poll() is None:  # hung: leave the evidence, fail the job
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        record["timed_out"] = True
    record |= {"rc": proc.returncode, "wall_s": round(time.time() - started, 1), "out": str(out), **watch.stop(),
               "stats": json.loads(stats.read_text()) if stats.exists() else None}
    if proc.returncode:
        record["log_tail"] = log.read_text()[-4000:]
    return record


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    t0 = time.time()
    sim = SimulatedCluster(workers=2, worker=NodeSpec(resources={"fake_gpu": 2}))
    result: dict = {"head": sim.head_node_id, "workers": sorted(sim.workers), "cluster_start_s": round(time.time() - t0, 1)}
    try:
        result["straight"] = run_job(sim, spec, "straight", 1, 2, faults=False)
        result["faulted"] = run_job(sim, spec, "faulted", 2, 2, faults=True)
        result["workers_after"] = sorted(sim.workers)
    finally:
        sim.shutdown()
    result["total_s"] = round(time.time() - t0, 1)
    Path(sys.argv[2]).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
