"""Benchmark: how reproducible PISM's buckets are under another seed, on the main job's pool.

PISM draws K masked, sampled answers per ratio; with K = 10 a sample whose rate at some ratio is near
tau can land in another bucket under other masks and sampling seeds. The main job's mid_hard
selection inherits that noise, so before reading "mid_hard vs random" this measures it: the pool
of a finished `gradus demo` run (configs/demo.yaml) is scored again with `pism.seed` + 1, same
config otherwise (configs/demo.yaml's PISM recipe and overrides), and the two score files are compared:
- bucket_agreement: share of samples with the same bucket (unsolved counted as a bucket);
- mid_hard_agreement: share with the same in/out of mid+hard membership, and the overlap of the two
  mid_hard sets beside the overlap two random sets of those sizes would have by chance;
- the bucket cross-table, and the bucket agreement per band of the clean image's pass rate.
Writes benchmarks/results/pism_stability.json.
`--draws 20 40` adds, under `by_draws`, the same comparison for two fresh scorings at each K (the
run's seed and the next): how many draws per ratio this model's buckets need to hold still.
Run: .venv/bin/python benchmarks/pism_stability.py --run outputs/demo [--draws 10 20]   (any finished demo out_dir)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results" / "pism_stability.json"
MID_HARD = ("mid", "hard")
CLEAN_BANDS = ((0.0, 0.1), (0.1, 0.3), (0.3, 0.6), (0.6, 1.0))


def compare(first: pd.DataFrame, second: pd.DataFrame) -> dict:
    """Agreement of two PISM score files on their common, error-free ids."""
    ok = lambda f: f[f["error"].isna()].set_index("id")  # noqa: E731
    a, b = ok(first), ok(second)
    ids = a.index.intersection(b.index)
    ba, bb = a.loc[ids, "bucket"].fillna("unsolved"), b.loc[ids, "bucket"].fillna("unsolved")
    ma, mb = ba.isin(MID_HARD), bb.isin(MID_HARD)
    n = len(ids)
    return {
        "samples": n,
        "bucket_agreement": round(float((ba == bb).mean()), 4),
        "mid_hard_agreement": round(float((ma == mb).mean()), 4),
        "mid_hard": {"first": int(ma.sum()), "second": int(mb.sum()), "both": int((ma & mb).sum()),
                     "both_by_chance": round(float(ma.sum() * mb.sum() / n), 1)},
        "cross_table": {k: {c: int(v) for c, v in row.items()} for k, row in pd.crosstab(ba, bb).to_dict("index").items()},
        "generations": {"first": int(a.loc[ids, "generations"].sum()), "second": int(b.loc[ids, "generations"].sum())},
        **({"by_clean_pass_rate": _by_clean_rate(a.loc[ids], b.loc[ids], ba == bb)} if "successes" in a and "successes" in b else {}),
    }


def _by_clean_rate(a: pd.DataFrame, b: pd.DataFrame, agree: pd.Series) -> dict:
    """Bucket agreement per band of the clean image's pass rate (successes / draws run at ratio 0, both runs
    averaged; the schedule stops a ratio once it is decided, so a rough rate): is the noise only where the
    model rarely answers?"""
    rate = lambda f: f["successes"].map(lambda s: s[0]) / f["runs"].map(lambda r: max(1, r[0]))  # noqa: E731
    clean = (rate(a) + rate(b)) / 2
    out = {}
    for low, high in CLEAN_BANDS:
        band = (clean >= low) & ((clean < high) if high < 1 else (clean <= 1))
        out[f"{low}-{high}"] = {"samples": int(band.sum()),
                                "bucket_agreement": round(float(agree[band].mean()), 4) if band.any() else None}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a finished `gradus demo` out_dir made with configs/demo.yaml")
    parser.add_argument("--out", default="", help="where the second scoring goes (default: <run>/pism_seed<seed+1>)")
    parser.add_argument("--draws", type=int, nargs="*", default=[],
                        help="also score the pool twice (the run's seed and the next) with pism.draws = each K here, "
                             "under `by_draws` (default: only the run's own K)")
    args = parser.parse_args()
    from engine.config import load_config, to_dict
    from pipelines.demo import DemoConfig
    from pipelines.pism import PismJobConfig, run_pism

    run = Path(args.run)
    summary = json.loads((run / "summary.json").read_text())
    demo = load_config(DemoConfig, REPO / "configs" / "demo.yaml")
    first = pd.read_parquet(run / "pism" / "scores.parquet")
    seed = int(first["seed"].iloc[0])  # provenance: the seed the run scored with

    def score(seed: int, out: Path, draws: int | None = None):
        """The run's pool scored by the demo's PISM recipe under `seed` (and `draws`), into `out` (resumes)."""
        job = load_config(PismJobConfig, REPO / demo.pism.config, [*demo.pism.overrides])
        job.input, job.output = str(run / "inputs" / "pool-subset"), str(out)
        job.generation.model_path, job.model_id = summary["model_path"], summary["model_id"]
        job.pism.seed, job.wandb.mode = seed, "disabled"
        if draws:
            job.pism.draws = draws
        return job, run_pism(job)

    # no wall times: the scorings resume from their folders, so a rerun would time nothing; generations are the cost
    job, second = score(seed + 1, Path(args.out) if args.out else run / f"pism_seed{seed + 1}")
    record = {
        "run": str(run), "seeds": [seed, seed + 1],
        **compare(first, pd.read_parquet(Path(job.output) / "scores.parquet")),
        "pism": to_dict(job.pism) | {"approx": "unused"}, "temperature": job.generation.temperature,
        "model_id": summary["model_id"], "config_hash": second["config_hash"], "gradus_version": second["gradus_version"],
        "date": time.strftime("%Y-%m-%d"),
    }
    if args.draws:
        # K draws per ratio sets how sharply "never right at this ratio" is told from "rarely right": the
        # agreement of two seeds at each K says how many draws a selection this model makes needs
        record["by_draws"] = {}
        for k in args.draws:
            runs = [score(s, run / f"pism_k{k}_seed{s}", k) for s in (seed, seed + 1)]
            frames = [pd.read_parquet(Path(j.output) / "scores.parquet") for j, _ in runs]
            record["by_draws"][str(k)] = {**{key: v for key, v in compare(*frames).items() if key != "cross_table"},
                                          "config_hashes": [r["config_hash"] for _, r in runs]}
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k not in ("cross_table", "pism")}, indent=2))


if __name__ == "__main__":
    main()
