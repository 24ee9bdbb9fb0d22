"""A multi-node Ray cluster on one machine, and a driver that runs a scoring pipeline on it.

`SimulatedCluster` wraps `ray.cluster_utils.Cluster`: a head node plus worker nodes, each its own
raylet with its own logical CPUs and custom resources standing in for GPUs (`fake_gpu`) and for
an accelerator type (`accelerator_type:SIM`, what `actors.accelerator_type: SIM` asks for). All
processes bind to 127.0.0.1. Nodes can be removed (a node failure) and added (the autoscaler's
replacement) while a job runs; `ActorWatch` follows a job's pool in the GCS actor table (node,
state, pid, restarts), which needs no dashboard.

The cluster must live in a process that is not connected to another Ray session (pytest's
session Ray, for instance): `ray.cluster_utils.Cluster` creates its nodes in-process and
`ray.init` state is per process. Tests and benchmarks therefore host it in a subprocess and run
each job as one more subprocess, the driver, with RAY_ADDRESS set to the cluster:

    python -m tests.support.simcluster score cmab --config configs/cmab/tiny.yaml \
        --placement '{"resources": {"fake_gpu": 1}, "accelerator_type": "SIM"}' --stats stats.json key=value ...

The driver runs the same `run_cmab` / `run_pism` that `gradus score` runs, with the pool config
carrying the placement (pipelines/placement.py) and Ray Data's stats summary collection on, and
writes per-stage stats (nodes used, tasks per node, wall times) to `--stats`.

The Cluster utility also records its address in /tmp/ray/ray_current_cluster (where a bare
`ray.init()` on this machine looks for "the" cluster) and deletes that file on shutdown, even when
another cluster wrote it. Both are switched off here: a simulated cluster must not capture other
sessions' `ray.init()` nor erase another head's record.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.paths import REPO_ROOT
LOOPBACK = "127.0.0.1"


def _quiet_address_file() -> None:
    """Keep ray.cluster_utils from writing or deleting /tmp/ray/ray_current_cluster (see module docstring)."""
    import ray._common.utils
    import ray._private.utils

    ray._private.utils.write_ray_address = lambda *args, **kwargs: None
    ray._common.utils.reset_ray_address = lambda *args, **kwargs: None


@dataclass
class NodeSpec:
    num_cpus: float = 1
    resources: dict[str, float] = field(default_factory=lambda: {"fake_gpu": 1})
    accelerator_type: str = "SIM"  # advertised as the resource accelerator_type:SIM (what Ray sets on real GPU nodes)
    object_store_mb: int = 256


class SimulatedCluster:
    """Head (CPUs only: the driver's read/write tasks) + worker nodes carrying fake GPUs."""

    def __init__(self, workers: int = 2, worker: NodeSpec | None = None, head_cpus: float = 1, head_object_store_mb: int = 256):
        _quiet_address_file()
        from ray.cluster_utils import Cluster

        self.worker_spec = worker or NodeSpec()
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # without it a Ray 2.60 head may swap the loopback node address for the machine's network one
        self.cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": head_cpus, "node_ip_address": LOOPBACK, "include_dashboard": False,
            "object_store_memory": head_object_store_mb * 1024 * 1024})
        self.workers: dict[str, object] = {}  # node id (hex) -> ray._private.node.Node
        for _ in range(workers):
            self.add_worker()
        self.cluster.wait_for_nodes()

    @property
    def address(self) -> str:
        return self.cluster.address

    @property
    def head_node_id(self) -> str:
        return self.cluster.head_node.node_id

    def add_worker(self, spec: NodeSpec | None = None) -> str:
        spec = spec or self.worker_spec
        resources = dict(spec.resources)
        if spec.accelerator_type:
            resources[f"accelerator_type:{spec.accelerator_type}"] = 1
        node = self.cluster.add_node(num_cpus=spec.num_cpus, resources=resources, node_ip_address=LOOPBACK,
                                     object_store_memory=spec.object_store_mb * 1024 * 1024)
        self.workers[node.node_id] = node
        return node.node_id

    def remove_worker(self, node_id: str) -> None:
        """A node failure: every process of the node is killed (no graceful drain)."""
        self.cluster.remove_node(self.workers.pop(node_id), allow_graceful=False)

    def actors(self, class_contains: str = "MapWorker") -> dict[str, dict]:
        """Actors of the cluster (GCS actor table) whose class name contains `class_contains`."""
        table = self.cluster.global_state.actor_table(None)
        return {aid: {"state": a["State"], "node_id": a["Address"]["NodeID"], "pid": a["Pid"], "restarts": a["NumRestarts"],
                      "job_id": a["JobID"], "class": a["ActorClassName"]}
                for aid, a in table.items() if class_contains in a["ActorClassName"]}

    def driver_env(self) -> dict:
        env = {**os.environ, "RAY_ADDRESS": self.address, "WANDB_MODE": "offline"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
        return env

    def shutdown(self) -> None:
        self.cluster.shutdown()


LIVE = {"DEPENDENCIES_UNREADY", "PENDING_CREATION", "ALIVE", "RESTARTING"}


class ActorWatch:
    """Polls the GCS actor table while a job runs: the pool's size over time and where each actor ran.

    Only actors that did not exist when the watch started are followed (earlier jobs' dead actors stay
    in the table)."""

    def __init__(self, sim: SimulatedCluster, class_contains: str = "MapWorker", interval_s: float = 0.25):
        self.sim, self.class_contains, self.interval_s = sim, class_contains, interval_s
        self.ignore = set(sim.actors(class_contains))
        self.timeline: list[dict] = []  # {"t", "live", "alive"} whenever the counts change
        # actor id -> {"alive_on": nodes it was alive on, in order; "alive_after_restart_on": nodes it was alive on
        # after its first restart; "pids"; "restarts"; "state"}
        self.seen: dict[str, dict] = {}
        self._lock = threading.Lock()  # poll() runs in the watch thread and in the caller's
        self._stop = threading.Event()
        self._started = time.time()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def poll(self) -> dict[str, dict]:
        with self._lock:
            return self._poll()

    def _poll(self) -> dict[str, dict]:
        current = {aid: a for aid, a in self.sim.actors(self.class_contains).items() if aid not in self.ignore}
        for aid, a in current.items():
            rec = self.seen.setdefault(aid, {"alive_on": [], "alive_after_restart_on": [], "pids": [], "restarts": 0, "state": ""})
            node = a["node_id"] if a["node_id"].strip("0") else ""  # set once the actor is placed on a node
            # Only an ALIVE actor counts as placed: under load the state API can show a pending/restarting actor with
            # the node id of the raylet handling its lease (seen once: the head, which has none of its resources).
            if a["state"] == "ALIVE" and node:
                if not rec["alive_on"] or rec["alive_on"][-1] != node:
                    rec["alive_on"].append(node)
                if a["restarts"] and node not in rec["alive_after_restart_on"]:
                    rec["alive_after_restart_on"].append(node)
                if a["pid"] and (not rec["pids"] or rec["pids"][-1] != a["pid"]):
                    rec["pids"].append(a["pid"])
            rec["restarts"], rec["state"] = a["restarts"], a["state"]
        live = sum(a["state"] in LIVE for a in current.values())
        alive = sum(a["state"] == "ALIVE" for a in current.values())
        if not self.timeline or (self.timeline[-1]["live"], self.timeline[-1]["alive"]) != (live, alive):
            self.timeline.append({"t": round(time.time() - self._started, 2), "live": live, "alive": alive})
        return current

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception:  # the GCS is briefly busy while a node goes away; the next poll catches up
                pass
            self._stop.wait(self.interval_s)

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        self.poll()
        return {"timeline": self.timeline, "actors": self.seen}


def start_driver(sim: SimulatedCluster, args: list[str], log: Path) -> subprocess.Popen:
    """`python -m tests.support.simcluster <args>` as a job driver on the simulated cluster."""
    handle = open(log, "w")
    return subprocess.Popen([sys.executable, "-m", "tests.support.simcluster", *args], cwd=REPO_ROOT, env=sim.driver_env(),
                            stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)


def kill_process(pid: int) -> None:
    """SIGKILL one process (an actor's worker): a crash as the OOM killer or a segfault would cause."""
    os.kill(pid, signal.SIGKILL)


# ---- the driver -------------------------------------------------------------------------------


def _stage_stats(summaries, needle: str) -> list[dict]:
    """Per-operator numbers of every executed dataset whose operator name contains `needle`."""
    found = []

    def visit(summary):
        for op in summary.operators_stats:
            if needle in op.operator_name:
                rec = {"operator": op.operator_name, "time_total_s": round(op.time_total_s, 3)}
                if op.node_count:
                    rec |= {"nodes_used": op.node_count.count, "tasks_per_node_min": op.node_count.min,
                            "tasks_per_node_max": op.node_count.max, "tasks": op.node_count.sum}
                if op.wall_time:
                    rec |= {"task_wall_s_mean": round(op.wall_time.mean, 4), "task_wall_s_sum": round(op.wall_time.sum, 3)}
                if op.function_body_time:
                    rec |= {"udf_s_mean": round(op.function_body_time.mean, 4), "udf_s_sum": round(op.function_body_time.sum, 3)}
                if op.output_num_rows:
                    rec["rows"] = op.output_num_rows.sum
                found.append(rec)
        for parent in summary.parents:
            visit(parent)

    for s in summaries:
        visit(s)
    return found


def _score(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.simcluster score")
    parser.add_argument("pipeline", choices=["cmab", "pism"])
    parser.add_argument("--config", required=True)
    parser.add_argument("--placement", default="{}", help="JSON: accelerator_type, resources, spread")
    parser.add_argument("--image-rows", action="store_true", help="size Ray Data blocks from the input's row bytes")
    parser.add_argument("--stats", default="", help="write the scoring stage's Ray Data stats (JSON) here")
    parser.add_argument("--wait-min-actors-s", type=float, default=0,
                        help="Ray Data waits this long for min_actors to be up before dispatching (0: dispatch as actors come)")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_intermixed_args(argv)

    import ray
    import ray.data

    from engine.config import from_dict, load_config
    from engine.ray_session import init_ray
    from pipelines.placement import Placement, mean_row_bytes, plan_image_rows, with_placement

    if args.pipeline == "cmab":
        from pipelines.cmab import CmabJobConfig as cls, run_cmab as run
        needle = "CmabActor"
    else:
        from pipelines.pism import PismJobConfig as cls, run_pism as run
        needle = "PismActor"
    cfg = load_config(cls, args.config, args.overrides)
    cfg.actors = with_placement(cfg.actors, from_dict(Placement, json.loads(args.placement)))
    init_ray()
    ctx = ray.data.DataContext.get_current()
    ctx.enable_stats_summary_collection = True
    ctx.enable_progress_bars = False
    if args.wait_min_actors_s > 0:
        ctx.wait_for_min_actors_s = args.wait_min_actors_s
    plan = None
    if args.image_rows:
        plan = plan_image_rows(mean_row_bytes(cfg.input), cfg.actors.batch_size, cfg.rows_per_block, cfg.actors.max_actors)
        plan.apply(ctx)
        cfg.rows_per_block = plan.rows_per_block
    earlier = len(ray.data.list_stats_summaries())  # the summary store is cluster-wide: earlier jobs' stages are in it
    started = time.time()
    summary = run(cfg)
    record = {"wall_s": round(time.time() - started, 2), "rows": summary.get("rows"), "driver_node": ray.get_runtime_context().get_node_id(),
              "stages": _stage_stats(ray.data.list_stats_summaries()[earlier:], needle),
              "plan": plan.__dict__ if plan else None}
    if args.stats:
        Path(args.stats).write_text(json.dumps(record, indent=2))
    print(json.dumps(record))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "score":
        print(__doc__)
        return 2
    return _score(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
