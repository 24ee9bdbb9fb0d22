"""Benchmark: the paper's Table-4 comparison on the embedded default, sized to have power (issue 21).

Two phases, one command:
1. Pilot: the main job as shipped (configs/demo.yaml: one seed, 180 held-out items), or an earlier
   run of it (`--pilot`). From its held-out rows, the largest sd of a per-item difference arm -
   random gives the held-out items for two SE to fall to `--target` (3 accuracy points) with half
   of the variance left to seeds (`items_needed`).
2. Powered run: the same config with that many held-out items (capped by the split) and
   `--seeds` training seeds; every arm trains once per seed, every model is evaluated on the same
   items with the same seeded draws (at configs/demo.yaml's evaluation temperature, the rollouts' one),
   then greedily (`greedy_*` per arm: one draw at T 0, the same items).

Differences between arms are paired over items and averaged over seeds; their SE adds the
between-seed spread of the per-seed differences to the SE over items (a seed that moves all
items at once is noise the item SE alone cannot see):
    se = sqrt(se_items(mean over seeds of d_item)^2 + var_seeds(d_seed) / n_seeds).
`detectable_effect` = 2 x the largest such SE of an arm-vs-random difference.

Writes benchmarks/results/table4_mini.json: design (pilot sd, items, seeds, target), per arm
{informative_share, train_reward_margin_sd, acc, vs_base, vs_base_se, vs_random, vs_random_se,
generations.scoring, generations.training, acc_gain_per_1k_generations}, detectable_effect,
best_arm_vs_base_in_se and a verdict sentence.
Run: .venv/bin/python benchmarks/table4_mini.py [--seeds 0 1] [--target 0.03] [--max-items 400] [--no-greedy] [--pilot DIR] [--arms ...]
`--contrast --arms mid_hard random --seeds 0 ... 9 --no-greedy` adds seeds to the primary contrast only (its own key,
`contrast`, in the same file; the full table is kept).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

RESULTS = REPO / "benchmarks" / "results" / "table4_mini.json"


def item_rates(out: Path, folder: str = "eval") -> pd.DataFrame:
    """The demo's held-out rows: model, id, task, pass_rate (judged items only)."""
    rows = pd.read_parquet(out / folder / "results.parquet", columns=["model", "id", "task", "pass_rate"])
    return rows[rows["pass_rate"].notna()]


def per_item(rows: pd.DataFrame, model: str) -> pd.Series:
    return rows[rows["model"] == model].set_index("id")["pass_rate"]


def items_needed(pilot: pd.DataFrame, arms: list[str], ref: str, target: float) -> tuple[int, float]:
    """Held-out items for 2 x SE <= target on every arm-vs-ref difference, from the pilot's per-item sd.

    The pilot has one seed, so the between-seed part of the SE is unknown: the items are sized so
    the item part alone uses half the variance budget (se_items <= target / (2 sqrt 2)), leaving
    the other half to seeds; the powered run then measures the real SE.
    """
    b = per_item(pilot, ref)
    sds = []
    for arm in arms:
        a = per_item(pilot, arm)
        both = a.index.intersection(b.index)
        sds.append(float((a[both] - b[both]).std(ddof=1)))
    sd = max(sds)
    return math.ceil(2 * (2 * sd / target) ** 2), round(sd, 4)


def seed_diffs(rows: pd.DataFrame, arm: str, ref: str | None, seeds: list[int], ref_seeded: bool) -> list[pd.Series]:
    """Per seed, the per-item difference arm - ref on the items both were evaluated on (ref: the same seed's
    model when `ref_seeded`, else one unseeded model such as base)."""
    diffs = []
    for s in seeds:
        a = per_item(rows, f"{arm}-s{s}")
        b = per_item(rows, f"{ref}-s{s}" if ref_seeded else ref)
        both = a.index.intersection(b.index)
        diffs.append(a[both] - b[both])
    return diffs


def paired_over_seeds(rows: pd.DataFrame, arm: str, ref: str | None, seeds: list[int], ref_seeded: bool) -> tuple[float, float]:
    """Mean over seeds of the paired difference arm - ref and its SE (module docstring)."""
    diffs = seed_diffs(rows, arm, ref, seeds, ref_seeded)
    per_seed = [float(d.mean()) for d in diffs]
    mean_item = pd.concat(diffs, axis=1).mean(axis=1)
    se_items = float(mean_item.std(ddof=1) / math.sqrt(len(mean_item)))
    seed_var = float(pd.Series(per_seed).var(ddof=1)) if len(per_seed) > 1 else 0.0
    return round(float(mean_item.mean()), 4), round(math.sqrt(se_items ** 2 + seed_var / len(seeds)), 4)


def run_demo_at(out: Path, seeds: list[int], heldout_limit: int | None, arms: list[str]) -> dict:
    from engine.config import load_config
    from pipelines.demo import DemoConfig, run_demo

    overrides = [f"out_dir={out}", f"seeds={json.dumps(seeds)}"]
    if heldout_limit is not None:
        overrides.append(f"heldout_limit={heldout_limit}")
    cfg = load_config(DemoConfig, REPO / "configs" / "demo.yaml", overrides)
    if arms:
        unknown = set(arms) - set(cfg.arms)
        if unknown:
            raise SystemExit(f"--arms: {sorted(unknown)} are not arms of configs/demo.yaml ({sorted(cfg.arms)})")
        cfg.arms = {label: arm for label, arm in cfg.arms.items() if label in arms}
    return run_demo(cfg)


def greedy_eval(out: Path, summary: dict, items: int) -> Path:
    """Every model of the powered run again on the same held-out items, greedy (one draw at T 0):
    the number a user who decodes greedily sees, beside the sampled one at the rollout temperature."""
    from engine.config import load_config
    from pipelines.evaluate import EvalJobConfig, run_eval

    models = {"base": summary["model_path"], **{name: r["final_model"] for name, r in summary["train"].items()}}
    cfg = load_config(EvalJobConfig, REPO / "configs" / "eval" / "default.yaml",
                      [f"input={summary['heldout']}", f"output={out / 'eval_greedy'}", f"limit={items}", "baseline=base", "n=1", "k=[1]",
                       "generation.temperature=0.0", "wandb.mode=disabled"])
    cfg.models = models
    run_eval(cfg)
    return out


def verdict(arms: dict, detectable: float, target: float) -> str:
    mh, fs = arms.get("mid_hard", {}), arms.get("fullset", {})
    powered = detectable <= target
    d, se = mh.get("vs_random"), mh.get("vs_random_se")
    finding = "beyond" if d is not None and se and abs(d) > 2 * se else "within"
    text = (f"{'Powered' if powered else 'Under-powered'} design: the smallest detectable difference from the random control is "
            f"{detectable:.3f} (target {target:.3f}). mid_hard vs random: {d:+.3f} (SE {se:.3f}, {finding} 2 SE).")
    if fs:
        text += f" fullset vs base: {fs.get('vs_base'):+.3f} (SE {fs.get('vs_base_se'):.3f})."
    return text


def write_contrast(rows: pd.DataFrame, summary: dict, args, items: int, sd: float, needed: int, wall_s: float) -> None:
    """The primary contrast alone (each --arms arm against random) over more seeds than the full table ran:
    training seeds are what limit its SE, and two arms per seed cost less than five."""
    arms = [a for a in summary["arms"] if a != "random"]
    if not arms or "random" not in summary["arms"]:
        raise SystemExit("--contrast needs random and at least one other arm in --arms")
    per_arm = {}
    for label in arms:
        d, se = paired_over_seeds(rows, label, "random", args.seeds, ref_seeded=True)
        per_seed = [round(float(diff.mean()), 4) for diff in seed_diffs(rows, label, "random", args.seeds, ref_seeded=True)]
        per_arm[label] = {"vs_random": d, "vs_random_se": se, "vs_random_per_seed": per_seed}
    accs = {a: round(float(rows[rows["model"].str.startswith(f"{a}-s")]["pass_rate"].mean()), 4) for a in summary["arms"]}
    detectable = round(2 * max(v["vs_random_se"] for v in per_arm.values()), 4)
    record = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    record["contrast"] = {
        "arms": per_arm, "acc": accs, "seeds": args.seeds, "items": items, "target": args.target,
        "pilot_max_sd_item_diff_vs_random": sd, "items_needed": needed, "detectable_effect": detectable,
        "powered": detectable <= args.target, "eval_temperature": summary["eval"]["temperature"],
        "se_definition": "as the full table's: sqrt(se_items(seed-mean per-item diff)^2 + var_seeds(per-seed diff)/n_seeds)",
        "config_hash": summary["config_hash"], "gradus_version": summary["gradus_version"], "wall_s": round(wall_s, 1),
    }
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record["contrast"], indent=2))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--target", type=float, default=0.03, help="difference mid_hard - random to detect at 2 SE")
    parser.add_argument("--max-items", type=int, default=400, help="held-out items available (configs/demo.yaml's held-out: 4 families x 100)")
    parser.add_argument("--no-greedy", action="store_true", help="skip the greedy evaluation of every model")
    parser.add_argument("--arms", nargs="*", default=[], help="a subset of configs/demo.yaml's arms (default: all; random is the control)")
    parser.add_argument("--contrast", action="store_true",
                        help="only the arms given by --arms (e.g. mid_hard random) over --seeds, reusing the trained seeds of "
                             "the full run in --out; writes table4_mini.json's `contrast` key and keeps the rest of the file")
    parser.add_argument("--out", default=str(REPO / "outputs" / "bench" / "table4_mini"))
    parser.add_argument("--pilot", default="", help="an earlier `gradus demo` out_dir (configs/demo.yaml as shipped) to use as the pilot")
    args = parser.parse_args()
    out = Path(args.out)
    started = time.time()

    pilot_dir = Path(args.pilot) if args.pilot else out / "pilot"
    if args.pilot:
        pilot_summary = json.loads((pilot_dir / "summary.json").read_text())
    else:
        pilot_summary = run_demo_at(pilot_dir, [0], None, args.arms)
    pilot = item_rates(pilot_dir)
    compared = [f"{a}-s0" for a in pilot_summary["arms"] if a != "random"]
    needed, sd = items_needed(pilot, compared, "random-s0", args.target)
    items = min(needed, args.max_items)
    pilot_wall = round(time.time() - started, 1)

    summary = run_demo_at(out / "powered", list(args.seeds), items, args.arms)
    rows = item_rates(out / "powered")
    if args.contrast:
        write_contrast(rows, summary, args, items, sd, needed, time.time() - started)
        return
    greedy = None if args.no_greedy else item_rates(greedy_eval(out / "powered", summary, items), "eval_greedy")
    arms = {}
    for label, rec in summary["arms"].items():
        entry = dict(rec)
        entry["vs_base_seed0"], entry["vs_base_se_seed0"] = rec.get("vs_base"), rec.get("vs_base_se")
        entry["vs_base"], entry["vs_base_se"] = paired_over_seeds(rows, label, "base", args.seeds, ref_seeded=False)
        if label != "random" and "random" in summary["arms"]:
            entry["vs_random_seed0"], entry["vs_random_se_seed0"] = rec.get("vs_random"), rec.get("vs_random_se")
            entry["vs_random"], entry["vs_random_se"] = paired_over_seeds(rows, label, "random", args.seeds, ref_seeded=True)
        if greedy is not None:
            entry["greedy_acc"] = round(float(greedy[greedy["model"].str.startswith(f"{label}-s")]["pass_rate"].mean()), 4)
            entry["greedy_vs_base"], entry["greedy_vs_base_se"] = paired_over_seeds(greedy, label, "base", args.seeds, ref_seeded=False)
        total = (entry.get("generations") or {}).get("total")
        entry["acc_gain_per_1k_generations"] = round(1000 * entry["vs_base"] / total, 5) if total else None
        arms[label] = entry
    detectable = round(2 * max(a["vs_random_se"] for k, a in arms.items() if k != "random" and a.get("vs_random_se")), 4)
    best = max(arms, key=lambda k: arms[k]["acc"])
    record = {
        "design": {"target": args.target, "pilot_max_sd_item_diff_vs_random": sd, "items_needed": needed, "items": items,
                   "items_capped": needed > args.max_items, "seeds": args.seeds, "eval_n": summary["eval"]["n"],
                   "se_definition": "sqrt(se_items(seed-mean per-item diff)^2 + var_seeds(per-seed diff)/n_seeds)"},
        "pilot": {"out_dir": str(pilot_dir), "detectable_effect": pilot_summary["detectable_effect"], "heldout_items": pilot_summary["eval"]["items"],
                  "wall_s": pilot_wall},
        "base": {"acc": next(r["acc"] for r in summary["comparison"] if r["data"] == "base (warm start)"),
                 **({"greedy_acc": round(float(greedy[greedy["model"] == "base"]["pass_rate"].mean()), 4)} if greedy is not None else {})},
        "eval_temperature": summary["eval"]["temperature"],
        "arms": arms,
        "detectable_effect": detectable,
        "best_arm": best,
        "best_arm_vs_base_in_se": round(arms[best]["vs_base"] / arms[best]["vs_base_se"], 2) if arms[best]["vs_base_se"] else None,
        "verdict": verdict(arms, detectable, args.target),
        "model_id": summary["model_id"],
        "config_hash": summary["config_hash"],
        "gradus_version": summary["gradus_version"],
        "wall_s": round(time.time() - started, 1),
    }
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: record[k] for k in ("design", "detectable_effect", "best_arm_vs_base_in_se", "verdict", "wall_s")}, indent=2))


if __name__ == "__main__":
    main()
