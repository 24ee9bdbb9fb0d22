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
- approx (`--parts approx`): the approximate schedule calibrated against the exact one on the same
  draws. The reference run's recorded draws are replayed through every schedule (draws are seeded,
  and an approximate run never needs a draw the exact one did not make): generations_ratio_paper_mix
  (reference / approx, reweighted as above by the exact bucket), bucket_agreement,
  lambda_within_one_step (share of samples whose approximate lambda* is at most one ratio from the
  exact one) and samples_outside_window (what the bound caps at delta) for the settings in
  configs/pism/tiny.yaml, with a sweep over delta at lambda_tolerance 1 and 0. The curve prior is
  cross-fitted: each half of the samples uses the prior fitted to the other half's reference records.
  The approximate schedule is also run on the engine, and must give the replay's records
  (`--replay-only` skips that run).
  The reference run's records are cached under the gradus cache dir
  (benchmarks/pism_reference/<key>.json, the key hashing the pism settings that change draws, the
  sampling settings, the model's path and weights and the sample ids), so `--parts approx` reuses
  them instead of running the reference schedule again (`--fresh-reference` reruns it; p1 always does).
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
APPROX_DELTAS = [0.005, 0.01, 0.02, 0.05, 0.1, 0.2]
APPROX_MIN_WEIGHT = 0.005  # fit_curve_prior's cut-off for the cross-fitted priors (as for configs/pism/tiny.yaml's)


def paper_mix_mean(per_bucket_mean: dict[str, float]) -> float:
    """Mean generations per sample on the paper's perception bucket shares."""
    return sum(PAPER_MIX[b] * m for b, m in per_bucket_mean.items())


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


def outcomes_of(rec) -> dict[tuple[int, int], bool]:
    """(ratio index, draw index) -> passed, for every draw a record ran."""
    return {(d["ratio_index"], d["draw"]): d["passed"] for d in rec.draws}


def _lookup(table: dict[tuple[int, int], bool]):
    def outcome(i: int, k: int) -> bool:
        if (i, k) not in table:
            raise RuntimeError(f"replay needs draw {k} of ratio {i}, which the exact run never made")
        return table[(i, k)]
    return outcome


def _lambda_index(sched, ratios) -> int:
    return len(ratios) if sched.lambda_star is None else ratios.index(sched.lambda_star)


def approx_against_exact(tables: list[dict], cfgs: list, exact_cfg, reference_cfg) -> dict:
    """Replay the approximate schedule (sample n under cfgs[n]) and the exact ones on the same recorded draws."""

    from engine.pism.schedule import replay

    ratios = exact_cfg.ratios
    by_bucket = defaultdict(lambda: [0, 0, 0, 0])  # reference, exact adaptive, approx generations, samples
    agree = within = outside = wrong_ratios = decided_ratios = 0
    for table, cfg in zip(tables, cfgs):
        ex, ap, rf = (replay(c, _lookup(table)) for c in (exact_cfg, cfg, reference_cfg))
        v = by_bucket[ex.bucket or "unsolved"]
        v[0], v[1], v[2], v[3] = v[0] + rf.generations, v[1] + ex.generations, v[2] + ap.generations, v[3] + 1
        agree += (ap.bucket, ap.unsolved) == (ex.bucket, ex.unsolved)
        off = abs(_lambda_index(ap, ratios) - _lambda_index(ex, ratios))
        within += off <= 1
        outside += (ap.bucket, ap.unsolved) != (ex.bucket, ex.unsolved) or off > cfg.approx.lambda_tolerance
        for i, d in enumerate(ap.decided):  # each approximate decision against the exact one of that ratio
            if d is not None:
                decided_ratios += 1
                wrong_ratios += d != rf.decided[i]
    n = len(tables)
    mix = {k: paper_mix_mean({b: v[k] / v[3] for b, v in by_bucket.items()}) for k in range(3)}
    return {
        "generations_ratio_paper_mix": round(mix[0] / mix[2], 3),
        "exact_generations_ratio_paper_mix": round(mix[0] / mix[1], 3),  # the adaptive schedule's, on the same draws
        "vs_exact_adaptive_paper_mix": round(mix[1] / mix[2], 3),
        "generations_ratio": round(sum(v[0] for v in by_bucket.values()) / sum(v[2] for v in by_bucket.values()), 3),
        "bucket_agreement": round(agree / n, 4),
        "lambda_within_one_step": round(within / n, 4),
        "samples_outside_window": round(outside / n, 4),  # bucket differs or lambda* off by more than lambda_tolerance: the bound says < delta
        "ratio_decisions_wrong": round(wrong_ratios / decided_ratios, 4),
        "per_bucket_mean_generations": {b: {"n": v[3], "exact_adaptive": round(v[1] / v[3], 2), "approx": round(v[2] / v[3], 2)}
                                        for b, v in sorted(by_bucket.items())},
    }


def approx_calibration(ref_recs, base_cfg) -> dict:
    """The approximate schedule against the exact one, replayed on the reference run's draws."""
    from dataclasses import asdict

    from engine.config import from_dict
    from engine.pism import PismConfig
    from engine.pism.schedule import fit_curve_prior

    tables = [outcomes_of(r) for r in ref_recs]
    exact_cfg = from_dict(PismConfig, {**asdict(base_cfg), "schedule": "adaptive"})
    reference_cfg = from_dict(PismConfig, {**asdict(base_cfg), "schedule": "reference"})
    halves = [list(range(0, len(tables), 2)), list(range(1, len(tables), 2))]

    def prior_from(indices) -> list[list[float]]:  # the curve prior of these samples' reference runs
        return fit_curve_prior([(ref_recs[n].runs, ref_recs[n].successes) for n in indices], base_cfg.ratios,
                               min_weight=APPROX_MIN_WEIGHT)

    priors = [prior_from(halves[1]), prior_from(halves[0])]  # half h uses the prior fitted on the other half
    half_of = {n: h for h, idx in enumerate(halves) for n in idx}

    def cfgs_for(**approx) -> list:
        made = [from_dict(PismConfig, {**asdict(base_cfg), "schedule": "approx",
                                       "approx": {**asdict(base_cfg.approx), "curves": curves, **approx}})
                for curves in priors]
        return [made[half_of[n]] for n in range(len(tables))]

    settings = asdict(base_cfg.approx)
    headline = approx_against_exact(tables, cfgs_for(), exact_cfg, reference_cfg)
    sweep = {f"tolerance_{tol}": {str(d): {k: v for k, v in approx_against_exact(tables, cfgs_for(delta=d, lambda_tolerance=tol), exact_cfg, reference_cfg).items()
                                           if k != "per_bucket_mean_generations"} for d in APPROX_DELTAS}
             for tol in (1, 0)}
    return {**headline, "settings": {"delta": settings["delta"], "lambda_tolerance": settings["lambda_tolerance"],
                                     "prior_cross_fitted_curves": [len(c) for c in priors], "min_weight": APPROX_MIN_WEIGHT},
            "sweep": sweep, "samples": len(tables)}


def approx_record(runs: dict, gen, ws, model, job, cached: bool = False) -> dict:
    """`approx` in pism.json: the calibration replay plus the approximate schedule's own engine run."""
    from engine import __version__
    from engine.config import config_hash
    from engine.pism.schedule import replay

    ref_cfg, ref, ref_s = runs["reference"]
    approx_cfg, approx, approx_s = runs.get("approx", (None, [r for r in ref], 0.0))  # --replay-only: no engine run
    ok = [(r, a) for r, a in zip(ref, approx) if r.error is None and a.error is None]
    if not ok:
        raise SystemExit(f"every sample errored, e.g. {ref[0].error}: {ref[0].error_detail}")
    record = approx_calibration([r for r, _ in ok], ref_cfg)
    record["engine_run"] = None
    if approx_cfg is not None:
        # the engine run under the config's own settings makes the draws, and decisions, the replay predicts
        same = all((s := replay(approx_cfg, _lookup(outcomes_of(r)))).runs == a.runs and s.lambda_star == a.lambda_star
                   and s.bucket == a.bucket for r, a in ok)
        record["engine_run"] = {
            "prior_curves": len(approx_cfg.approx.curves), "delta": approx_cfg.approx.delta,
            "lambda_tolerance": approx_cfg.approx.lambda_tolerance,
            "generations": sum(a.generations for _, a in ok), "reference_generations": sum(r.generations for r, _ in ok),
            "wall_s": {"reference": round(ref_s, 1), "approx": round(approx_s, 1)}, "matches_replay": same,
        }
    record.update({
        "reference_from_cache": cached,
        "errors": len(ref) - len(ok), "backend": gen.backend, "temperature": gen.temperature, "max_new_tokens": gen.max_new_tokens,
        "pism": {"draws": ref_cfg.draws, "tau": ref_cfg.tau, "ratios": ref_cfg.ratios, "mask_mode": ref_cfg.mask_mode},
        "model_id": ws.model.model_id, "model_path": str(model), "config_hash": config_hash(job), "gradus_version": __version__,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
    })
    return record


def reference_cache_path(job, gen, model, samples, root: Path) -> Path:
    """Where the reference run's records are cached: keyed by what decides its draws (the pism settings
    that change draws, sampling, images, the model's path and weights, the sample ids), not by the
    approx settings, which only change which of those draws a replay reads."""
    from engine.config import config_hash, to_dict
    from pipelines.evaluate import model_fingerprint

    pism = {k: v for k, v in to_dict(job.pism).items() if k not in ("schedule", "approx", "max_in_flight")}
    key = config_hash({"pism": pism, "generation": {**to_dict(gen), "model_path": ""}, "images": to_dict(job.images),
                       "model_path": str(model), "weights": model_fingerprint(str(model)), "samples": [s.id for s in samples]})
    return root / "benchmarks" / "pism_reference" / f"{key}.json"


def load_reference(path: Path):
    """(records, wall seconds) of a cached reference run, or None."""
    import json

    from engine.pism import PismRecord

    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return [PismRecord(**r) for r in data["records"]], data["wall_s"]


def save_reference(path: Path, recs, wall_s: float) -> None:
    import json
    from dataclasses import asdict

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"wall_s": wall_s, "records": [asdict(r) for r in recs]}))
    tmp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-family", type=int, default=20)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "pism.json"))
    parser.add_argument("--parts", nargs="+", choices=["p1", "approx"], default=["p1", "approx"],
                        help="p1: reference vs adaptive; approx: the approximate schedule against the exact one (both need the reference run)")
    parser.add_argument("--fresh-reference", action="store_true",
                        help="run the reference schedule on the engine even when its records are cached (p1 always does)")
    parser.add_argument("--replay-only", action="store_true",
                        help="approx: replay the reference draws (cached, or run once and cached) without the approximate schedule's own engine run")
    args = parser.parse_args()

    from dataclasses import asdict

    from engine import __version__
    from engine.config import config_hash, from_dict, load_config
    from engine.data.shards import iter_samples
    from engine.generation.base import GenerationConfig
    from engine.generation.factory import make_backend
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
    cache = reference_cache_path(job, gen, model, samples, cache_root(ws.cache_dir))
    cached = None if "p1" in args.parts or args.fresh_reference else load_reference(cache)
    if args.replay_only and "p1" in args.parts:
        raise SystemExit("--replay-only is for --parts approx (p1 measures the engine)")
    runs = {}
    if cached is not None:
        print(f"reference records from the cache: {cache}")
        runs["reference"] = (from_dict(PismConfig, {**asdict(job.pism), "schedule": "reference"}), *cached)
    wanted = [s for s in ("reference", "adaptive", "approx") if s not in runs
              and not (s == "adaptive" and "p1" not in args.parts or s == "approx" and ("approx" not in args.parts or args.replay_only))]
    if wanted:
        backend = make_backend(gen)
        for schedule in wanted:
            cfg = from_dict(PismConfig, {**asdict(job.pism), "schedule": schedule})
            t0 = time.time()
            recs = score_samples(samples, backend, cfg)
            runs[schedule] = (cfg, recs, time.time() - t0)
            if schedule == "reference":
                save_reference(cache, recs, runs[schedule][2])
        backend.close()

    ref_cfg, ref, ref_s = runs["reference"]
    if "approx" in args.parts:
        merge_results(Path(args.out), {"approx": approx_record(runs, gen, ws, model, job, cached is not None)})
    if "p1" not in args.parts:
        return
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
    ref_mix = paper_mix_mean({b: v[0] / v[2] for b, v in by_bucket.items()})
    ada_mix = paper_mix_mean({b: v[1] / v[2] for b, v in by_bucket.items()})
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
