"""Benchmark P1: generations spent by the reference vs the exact adaptive PISM schedule.

Writes benchmarks/results/pism.json with:
- generations_ratio: reference-schedule generations / adaptive-schedule generations on the
  synthetic test split, warm-started tiny model, vLLM (CPU here), same seeds, same run;
- generations_ratio_paper_mix: the same, per-bucket means reweighted to the paper's perception
  shares (easy 38 %, mid 24 %, hard 7 %, unsolved 31 %);
- bucket_agreement: share of samples with the same bucket under both schedules (must be 1.0);
- adaptive_is_minimal: share of samples where the adaptive count equals the minimum any exact
  schedule needs for the outcomes the reference run observed;
- tokens_per_generation for both runs; machine, model, corpus size and wall times.
P2 (pipeline efficiency), P3 (batched vs reference client) and the stop-string check are
benchmarks/pism_throughput.py; both scripts update their own keys in the same file.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from collections import defaultdict
from pathlib import Path

from common import merge_results, per_family

REPO = Path(__file__).resolve().parent.parent
PAPER_MIX = {"easy": 0.38, "mid": 0.24, "hard": 0.07, "unsolved": 0.31}


def minimal_generations(rec, cfg) -> int:
    """Fewest draws an exact schedule needs for these outcomes (K=10, tau=0.1: one success passes a ratio).

    Passing ratios up to lambda*: draws up to and including the first success; the failing ratio:
    all K draws (zero successes must be shown); nothing after it.
    """
    first_success = {}
    for d in rec.draws:
        if d["passed"]:
            first_success.setdefault(d["ratio_index"], d["draw"])
    total = 0
    for i in range(len(cfg.ratios)):
        if i in first_success:
            total += first_success[i] + 1
        else:
            return total + cfg.draws
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-family", type=int, default=20)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "pism.json"))
    args = parser.parse_args()

    from dataclasses import asdict

    from engine import __version__
    from engine.config import config_hash, from_dict, load_config
    from engine.data.shards import iter_samples
    from engine.generation.base import GenerationConfig, make_backend
    from engine.pism import PismConfig, score_samples
    from pipelines.pism import PismJobConfig
    from engine.paths import cache_root
    from rl.warmstart import WarmstartConfig, ensure_corpus, ensure_warmstart

    ws = load_config(WarmstartConfig, REPO / "configs" / "warmstart" / "tiny.yaml")
    model = ensure_warmstart(ws)
    corpus = ensure_corpus(ws.synth, cache_root(ws.cache_dir))
    samples = per_family(iter_samples(corpus / "test"), args.per_family)
    job = load_config(PismJobConfig, REPO / "configs" / "pism" / "tiny.yaml")
    gen = from_dict(GenerationConfig, {**asdict(job.generation), "model_path": str(model)})
    backend = make_backend(gen)
    runs = {}
    for schedule in ("reference", "adaptive"):
        cfg = from_dict(PismConfig, {**asdict(job.pism), "schedule": schedule})
        t0 = time.time()
        recs = score_samples(samples, backend, cfg)
        runs[schedule] = (cfg, recs, time.time() - t0)
    backend.close()

    ref_cfg, ref, ref_s = runs["reference"]
    _, ada, ada_s = runs["adaptive"]
    ok = [(r, a) for r, a in zip(ref, ada) if r.error is None and a.error is None]
    if not ok:
        raise SystemExit(f"every sample errored, e.g. {ref[0].error}: {ref[0].error_detail}")
    agree = sum(r.bucket == a.bucket and r.unsolved == a.unsolved for r, a in ok) / len(ok)
    minimal = sum(a.generations == minimal_generations(r, ref_cfg) for r, a in ok) / len(ok)
    by_bucket = defaultdict(lambda: [0, 0, 0])
    for r, a in ok:
        b = r.bucket or "unsolved"
        by_bucket[b][0] += r.generations
        by_bucket[b][1] += a.generations
        by_bucket[b][2] += 1
    ref_mix = sum(PAPER_MIX[b] * v[0] / v[2] for b, v in by_bucket.items())
    ada_mix = sum(PAPER_MIX[b] * v[1] / v[2] for b, v in by_bucket.items())
    missing = [b for b in PAPER_MIX if b not in by_bucket]
    record = {
        "generations_ratio": round(sum(r.generations for r, _ in ok) / sum(a.generations for _, a in ok), 3),
        "generations_ratio_paper_mix": round(ref_mix / ada_mix, 3) if not missing else None,
        "paper_mix_missing_buckets": missing,
        "bucket_agreement": agree,
        "adaptive_is_minimal": minimal,
        "per_bucket": {b: {"n": v[2], "reference_mean_generations": round(v[0] / v[2], 2), "adaptive_mean_generations": round(v[1] / v[2], 2)} for b, v in sorted(by_bucket.items())},
        "tokens_per_generation": {
            "reference": round(sum(r.tokens for r, _ in ok) / max(1, sum(r.generations for r, _ in ok)), 2),
            "adaptive": round(sum(a.tokens for _, a in ok) / max(1, sum(a.generations for _, a in ok)), 2),
        },
        "wall_s": {"reference": round(ref_s, 1), "adaptive": round(ada_s, 1)},
        "samples": len(samples), "scored": len(ok), "per_family": args.per_family,
        "errors": sum(1 for r, a in zip(ref, ada) if r.error or a.error),
        "backend": gen.backend, "temperature": gen.temperature, "max_new_tokens": gen.max_new_tokens,
        "pism": {"draws": ref_cfg.draws, "tau": ref_cfg.tau, "ratios": ref_cfg.ratios, "mask_mode": ref_cfg.mask_mode},
        "model_id": ws.model.model_id, "model_path": str(model), "config_hash": config_hash(job), "gradus_version": __version__,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }
    merge_results(Path(args.out), record)


if __name__ == "__main__":
    main()
