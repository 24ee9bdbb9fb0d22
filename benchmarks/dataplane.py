"""Benchmark: the shaping data plane (store build, select, export) as Ray Data jobs, at 10k, 100k and 1M rows.

Synthetic corpus per size: canonical shards of N samples (two domains, train split) whose image
is a reference (a path under one image root, an 8x8 PNG), and a PISM scores file of N rows
(buckets easy / mid / hard / unsolved, provenance columns as the pipeline writes them). Extra entry
"100000_embedded": the same at 100k with each sample's image embedded (a 32x32 noise PNG, ~3 KB).

Stages, each forced through Ray Data (local_below_rows=0) on a local Ray cluster of 2 CPUs with
an object store of --object-store-mb (set explicitly, kept small):
- store: `build_store` (pism joined onto the samples, partitioned by domain and pism.stratum);
- select: `run_select` with preset grpo_only (fullset, unsolved, mid_hard, random of mid_hard's size);
- export: `gradus data export --to verl` of the fullset selection (image bytes read and embedded).

Memory: a sampler thread sums the resident set size (RSS) of this process and every process under
it (Ray's GCS, raylet, dashboard and workers: the whole tree ray.init started) every 0.2 s; the
peak of that sum over a stage is peak_rss_bytes. RSS counts a shared page (Ray's object store,
mapped by several workers) once per process that maps it, so the sum overstates the tree's real
use; peak_pss_bytes (proportional set size, shared pages split among their users, sampled every
1 s) is given beside it. wall_s: the stage's wall time, Ray start-up excluded (the cluster is
started once per size, before the stages). Ray starts without its dashboard (`--dashboard` keeps it):
the dashboard's head and agent processes hold about 1 GiB of RSS on their own, a fixed cost of a
local session that no shaping stage uses (on a cluster it lives on the head node); each size's
`ray_idle_rss_bytes` is the tree's RSS after Ray's start, before the first stage.

    python benchmarks/dataplane.py                      # all sizes (1M last)
    python benchmarks/dataplane.py --sizes 10000        # one size
Writes benchmarks/results/dataplane.json (sizes measured now replace the same sizes there).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results" / "dataplane.json"
ROWS_PER_SHARD = 50000
BUCKETS = ("easy", "mid", "hard", None)  # None: unsolved


class TreeMemory:
    """Peak RSS (every 0.2 s) and PSS (every 1 s) summed over this process and its descendants."""

    def __init__(self):
        import psutil

        self.root = psutil.Process()
        self.peak_rss = self.peak_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _tree(self):
        try:
            return [self.root] + self.root.children(recursive=True)
        except Exception:  # noqa: BLE001 - a process ending while listed
            return [self.root]

    def _sum(self, attr: str) -> int:
        total = 0
        for p in self._tree():
            try:
                info = p.memory_full_info() if attr == "pss" else p.memory_info()
                total += getattr(info, attr)
            except Exception:  # noqa: BLE001 - gone between listing and reading
                pass
        return total

    def _run(self):
        tick = 0
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, self._sum("rss"))
            if tick % 5 == 0:
                self.peak_pss = max(self.peak_pss, self._sum("pss"))
            tick += 1
            self._stop.wait(0.2)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_rss = max(self.peak_rss, self._sum("rss"))


def png(size: int, noise: bool, seed: int = 0) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8) if noise else np.full((size, size, 3), 127, np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def make_corpus(root: Path, n: int, embedded: bool) -> None:
    """Shards of n samples (image as a path, or embedded noise) and a PISM scores file of n rows."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from engine.data.sample import SAMPLE_SCHEMA

    (root / "images").mkdir(parents=True)
    (root / "images" / "img.png").write_bytes(png(8, noise=False))
    (root / "shards").mkdir()
    rng = np.random.default_rng(0)
    for start in range(0, n, ROWS_PER_SHARD):
        ids = [f"s{i:08d}" for i in range(start, min(start + ROWS_PER_SHARD, n))]
        images = [[{"bytes": png(32, True, seed=i) if embedded else None, "path": None if embedded else "img.png"}] for i in range(len(ids))]
        table = pa.table({
            "id": ids, "images": images,
            "messages": [[{"role": "user", "content": f"<image>How many shapes are in picture {i}?"}] for i in ids],
            "answer": [str(len(i) % 7) for i in ids], "task": ["counting"] * len(ids), "verifier": ["numeric"] * len(ids),
            "verifier_params": ["{}"] * len(ids), "domain": ["perception" if k % 5 else "reasoning" for k in range(len(ids))],
            "source": ["synth"] * len(ids), "split": ["train"] * len(ids), "meta": ["{}"] * len(ids)}).cast(SAMPLE_SCHEMA)
        pq.write_table(table, root / "shards" / f"part-{start // ROWS_PER_SHARD:05d}.parquet")
    pick = rng.integers(0, len(BUCKETS), n)
    lam = rng.random(n)
    bucket = [BUCKETS[k] for k in pick]
    scores = pa.table({
        "id": [f"s{i:08d}" for i in range(n)],
        "lambda_star": pa.array([None if b in ("easy", None) else float(x) for b, x in zip(bucket, lam)], pa.float64()),
        "bucket": pa.array(bucket, pa.string()), "unsolved": [b is None for b in bucket],
        "generations": pa.array(rng.integers(8, 40, n), pa.int64()),
        "error": pa.nulls(n, pa.string()), "error_detail": pa.nulls(n, pa.string()),
        "model_id": ["gradus/tiny-qwen2.5-vl"] * n, "config_hash": ["bench"] * n, "seed": pa.array([0] * n, pa.int64()),
        "gradus_version": ["0.1.0"] * n})
    (root / "pism").mkdir()
    pq.write_table(scores, root / "pism" / "scores.parquet")


def run_size(n: int, embedded: bool, work: Path, actors: int, stages: list[str]) -> dict:
    from engine.shaping.store import ScoreSource, build_store
    from pipelines.cli import main as cli
    from engine.shaping.select import SelectionSpec
    from pipelines.shaping.select import SelectJobConfig, run_select

    make_corpus(work, n, embedded)
    out: dict = {}

    def stage(name, fn):
        if name not in stages:
            return
        start = time.time()
        with TreeMemory() as mem:
            detail = fn()
        out[name] = {"wall_s": round(time.time() - start, 2), "peak_rss_bytes": mem.peak_rss, "peak_pss_bytes": mem.peak_pss} | detail
        print(name, n, "embedded" if embedded else "", out[name], flush=True)

    stage("store", lambda: {"rows": build_store(work / "store", {"pism": ScoreSource(str(work / "pism"))}, samples=str(work / "shards"),
                                                  partition_by=["domain", "pism.stratum"], actors=actors, local_below_rows=0)["rows"]})
    cfg = SelectJobConfig(store=str(work / "store"), output=str(work / "select"), preset="grpo_only", actors=actors, local_below_rows=0)
    if "export" in stages and "select" not in stages:  # export reads the fullset selection: fullset alone, not timed
        run_select(SelectJobConfig(store=cfg.store, output=cfg.output, selections={"fullset": SelectionSpec()}, actors=actors, local_below_rows=0))
    cfg.validate()
    stage("select", lambda: {"rows_written": sum(s["count"] for s in run_select(cfg)["selections"].values())})
    code = []
    stage("export", lambda: code.append(cli(["data", "export", "--to", "verl", "--input", str(work / "select" / "selections" / "fullset"),
                                             "--out", str(work / "verl"), "--image-root", str(work / "images"), "--actors", str(actors),
                                             "--local-below-rows", "0"])) or {"rows": n})
    if "export" in stages and code != [0]:
        raise RuntimeError(f"export exited with {code}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,100000_embedded,1000000", help="comma-separated: N or N_embedded")
    parser.add_argument("--object-store-mb", type=int, default=512, help="Ray object store size (MiB)")
    parser.add_argument("--actors", type=int, default=2, help="Ray Data actors per stage")
    parser.add_argument("--stages", default="store,select,export", help="comma-separated stages to time (store always runs)")
    parser.add_argument("--dashboard", action="store_true", help="start Ray's dashboard too (its processes count in the tree)")
    parser.add_argument("--work", default="", help="scratch directory (default: a temporary one)")
    args = parser.parse_args()
    import ray

    from engine.ray_session import init_ray, shutdown_ray

    record = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for size in args.sizes.split(","):
        n, embedded = int(size.split("_")[0]), size.endswith("_embedded")
        work = Path(tempfile.mkdtemp(prefix="gradus-dataplane-", dir=args.work or None))
        try:
            init_ray(num_cpus=2, object_store_memory=args.object_store_mb * 2**20, log_to_driver=False, include_dashboard=args.dashboard)
            time.sleep(5)  # let Ray's start-up processes settle before reading the idle tree
            with TreeMemory() as idle:
                pass
            result = run_size(n, embedded, work, args.actors, args.stages.split(",") + ["store"])
            for value in result.values():
                value["ray_idle_rss_bytes"] = idle.peak_rss
        finally:
            if ray.is_initialized():
                shutdown_ray()
            shutil.rmtree(work, ignore_errors=True)
        for stage, value in result.items():
            record.setdefault(stage, {})[size] = value
        record["setup"] = {"cpus": 2, "object_store_bytes": args.object_store_mb * 2**20, "actors": args.actors, "dashboard": args.dashboard,
                           "machine": f"{platform.machine()}, {os.cpu_count()} cores shared with other work",
                           "load_average_at_end": os.getloadavg()}
        RESULTS.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
