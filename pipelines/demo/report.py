"""The main job's report: one offline HTML file (PNGs inlined) plus the PNGs beside it in <out>/report/.

Sections: corpus, PISM (survival, buckets), CMAB (rho-bar, heatmaps), PISM vs CMAB agreement,
selections, training curves, the GRPO mechanism per arm (informative share per step, margin over
noise, generations spent; pipelines/demo/measures.py), held-out accuracy per task and pass@k, the
comparison table.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.demo.compare import comparison_rows, reading
from pipelines.demo.config import DemoConfig, arm_samples_online
from pipelines.demo.measures import informative_curves, measure_arms


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _label(ax, xlabel: str, ylabel: str, title: str, legend: bool = True) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize=7)


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def corpus_rows(pool: Path, heldout: Path, heldout_ids: set[str]) -> list[dict]:
    from engine.data.shards import read_table

    pool_tasks = pd.Series(read_table(pool).column("task").to_pylist()).value_counts()
    held = read_table(heldout).select(["id", "task"]).to_pandas()
    held = held[held["id"].isin(heldout_ids)] if heldout_ids else held
    held_tasks = held["task"].value_counts()
    tasks = sorted(set(pool_tasks.index) | set(held_tasks.index))
    return [{"task": t, "pool (scored, train split)": int(pool_tasks.get(t, 0)), "held-out (evaluated)": int(held_tasks.get(t, 0))}
            for t in tasks]


def agreement(store: Path) -> tuple[pd.DataFrame, float | None, pd.DataFrame]:
    """PISM bucket x CMAB bucket counts, Spearman(lambda*, rho-bar) on samples both scored, and the joined frame."""
    from engine.shaping.store import read_store

    cols = ["id", "task", "pism.bucket", "pism.unsolved", "pism.lambda_star", "cmab.bucket", "cmab.unsolved", "cmab.rho_bar"]
    frame = read_store(store, columns=cols).to_pandas()
    label = lambda b, u: "unsolved" if u else (b or "error")  # noqa: E731
    frame["pism"] = [label(b, u) for b, u in zip(frame["pism.bucket"], frame["pism.unsolved"])]
    frame["cmab"] = [label(b, u) for b, u in zip(frame["cmab.bucket"], frame["cmab.unsolved"])]
    order = [b for b in ("easy", "mid", "hard", "unsolved", "error") if b in set(frame["pism"]) | set(frame["cmab"])]
    table = pd.crosstab(frame["pism"], frame["cmab"]).reindex(index=order, columns=order, fill_value=0)
    both = frame.dropna(subset=["pism.lambda_star", "cmab.rho_bar"])
    rho = None
    if len(both) > 2:
        # Spearman = Pearson on ranks (pandas' spearman needs scipy; ranks need nothing)
        r = both["pism.lambda_star"].rank().corr(both["cmab.rho_bar"].rank())
        rho = None if r != r else round(float(r), 3)
    return table, rho, frame


def plot_agreement(table: pd.DataFrame, frame: pd.DataFrame, rho: float | None, path: Path) -> Path:
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    a.imshow(table.values, cmap="Blues")
    a.set_xticks(range(len(table.columns)), table.columns)
    a.set_yticks(range(len(table.index)), table.index)
    for i in range(len(table.index)):
        for j in range(len(table.columns)):
            a.text(j, i, int(table.values[i, j]), ha="center", va="center", fontsize=9)
    a.set_xlabel("CMAB bucket")
    a.set_ylabel("PISM bucket")
    a.set_title("samples per (PISM, CMAB) bucket")
    both = frame.dropna(subset=["pism.lambda_star", "cmab.rho_bar"])
    for task, g in both.groupby("task"):
        b.scatter(g["pism.lambda_star"], g["cmab.rho_bar"], s=14, alpha=0.7, label=task)
    _label(b, "PISM lambda* (first ratio never solved)", "CMAB rho-bar", f"Spearman {rho if rho is not None else 'n/a'} on {len(both)} samples scored by both")
    return _save(plt, fig, path)


def plot_reward_curves(train: dict[str, dict], path: Path) -> Path | None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.8), dpi=110)
    drawn = 0
    for name, run in train.items():
        grpo = [s for s in run["stages"] if s["kind"] == "grpo" and s.get("metrics") and Path(s["metrics"]).exists()]
        for stage in grpo:
            rows = [json.loads(x) for x in Path(stage["metrics"]).read_text().splitlines() if x.strip()]
            if rows:
                ax.plot([r["step"] for r in rows], [r.get("reward", float("nan")) for r in rows], lw=1.2, marker=".", label=name)
                drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    _label(ax, "GRPO step", "mean reward (batch)", "GRPO reward per step, every arm (same step budget)")
    return _save(plt, fig, path)


def plot_informative_share(curves: dict[str, list[tuple[int, float]]], path: Path) -> Path | None:
    """Share of prompt groups whose rewards differ (the only ones GRPO learns from), per step, one line per arm."""
    if not curves:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.8), dpi=110)
    for label, points in curves.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], lw=1.2, marker=".", label=label)
    ax.set_ylim(-0.02, 1.02)
    _label(ax, "GRPO step", "informative share of prompt groups", "GRPO signal per step: groups whose rewards are not all equal")
    return _save(plt, fig, path)


def mechanism_rows(arms: dict[str, dict]) -> list[dict]:
    """The report's per-arm table of the mechanism and the cost (pipelines/demo/measures.py)."""
    return [{"arm": label, "informative share (mean)": a["informative_share"],
             "first -> last window": f"{a['informative_share_first']} -> {a['informative_share_last']}",
             "mean |advantage|": a["adv_abs_mean"], "zero-signal rollouts (share)": a["zero_signal_share"],
             "train reward first -> last": f"{a['train_reward_first']} -> {a['train_reward_last']}",
             "reward rise (noise sd)": a["train_reward_margin_sd"],
             "generations: scoring": a["generations"]["scoring"], "training": a["generations"]["training"],
             "total": a["generations"]["total"], "acc": a["acc"], "vs base": a["vs_base"],
             "acc gain per 1k generations": a["acc_gain_per_1k_generations"]} for label, a in arms.items()]


def mechanism_reading(arms: dict[str, dict], detectable: float | None) -> list[str]:
    lines = []
    full = (arms.get("fullset") or {}).get("informative_share")
    for label, a in arms.items():
        share = a.get("informative_share")
        if share is not None and full and label != "fullset":
            lines.append(f"{label}: informative share {share:.2f} vs fullset {full:.2f} ({share / full:.2f}x).")
    if detectable is not None:
        lines.append(f"Smallest difference from the random control this design detects (2 paired SE): {detectable:.3f}.")
    return lines


def plot_comparison(rows: list[dict], path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    names = [r["data"] for r in rows]
    accs = [r["acc"] for r in rows]
    errs = [2 * (r["se_items"] or 0) for r in rows]
    ax.bar(range(len(rows)), accs, yerr=errs, capsize=4, color=["#999"] + ["#4a7"] * (len(rows) - 1))
    ax.set_xticks(range(len(rows)), names, rotation=15, fontsize=8)
    ax.set_ylabel("held-out accuracy (pass@1)")
    ax.set_title("Comparison (error bars: 2 SE over held-out items)")
    ax.grid(axis="y", alpha=0.3)
    return _save(plt, fig, path)


def write_report(cfg: DemoConfig, summary: dict[str, Any], out: Path) -> dict[str, Any]:
    from engine.html_report import write_html_report

    folder = out / "report"
    folder.mkdir(parents=True, exist_ok=True)
    results = pd.read_parquet(out / "eval" / "results.parquet")
    record = json.loads((out / "select" / "selection.json").read_text())
    arm_sets = {label: sets for label, sets in _arm_sets(cfg, record).items() if label not in summary["arms_not_trained"]}
    rows = comparison_rows(results, arm_sets, cfg.seeds)
    measured = measure_arms(arm_sets, record["spec"]["selections"], rows, summary["train"], summary.get("train_noise") or {},
                            cfg.seeds, summary["pism"], summary["cmab"], [a for a in arm_sets if arm_samples_online(cfg, a)])
    notes = ([summary["warning"]] if summary.get("warning") else []) + reading(rows) + mechanism_reading(
        measured["arms"], measured["detectable_effect"]) + [f"{label}: not trained ({why})." for label, why in summary["arms_not_trained"].items()]
    table, rho, frame = agreement(out / "store")

    made = [plot_comparison(rows, folder / "comparison.png"), plot_agreement(table, frame, rho, folder / "pism_vs_cmab.png")]
    curves = plot_reward_curves(summary["train"], folder / "reward_curves.png")
    made += [curves] if curves else []
    signal = plot_informative_share(informative_curves(list(arm_sets), summary["train"], cfg.seeds), folder / "informative_share.png")
    made += [signal] if signal else []
    copied = []
    heatmaps = summary["cmab"].get("heatmaps", [])[: max(1, 2 * cfg.heatmaps_per_task)]
    for src in [*summary["pism"].get("plots", []), *summary["cmab"].get("plots", []), *heatmaps, *summary["eval"].get("plots", [])]:
        stage = Path(src).parent.name if Path(src).parent.name != "heatmaps" else "cmab_heatmap"
        dst = folder / f"{stage}_{Path(src).name}"
        shutil.copyfile(src, dst)
        copied.append(dst)
    images = [made[0], *[p for p in copied if p.name.startswith("eval_")], *made[2:], *[p for p in copied if p.name.startswith("pism_")],
              *[p for p in copied if p.name.startswith("cmab")], made[1]]

    ev = summary["eval"]
    per_task = []
    for label, m in ev["models"].items():
        for task, t in sorted(m["per_task"].items()):
            per_task.append({"model": label, "task": task, "items": t["items"], "accuracy": t["accuracy"],
                             **{f"pass@{k}": v for k, v in t["pass_at_k"].items()}})
    pass_k = [{"model": label, "accuracy": m["accuracy"], **{f"pass@{k}": v for k, v in m["pass_at_k"].items()}}
              for label, m in ev["models"].items()]
    selections = [{"selection": n, "count": c} for n, c in summary["select"]["selections"].items()]
    training = [{"run": name, **{f"{s['kind']}_{k}": s.get(k) for s in r["stages"] for k in ("steps", "reward_first", "reward_last") if s.get(k) is not None},
                 "wall_s": r.get("wall_s")} for name, r in summary["train"].items()]
    headline = {
        "model": summary["model_id"],
        "seeds": ", ".join(map(str, cfg.seeds)),
        "held-out items": ev.get("items"),
        "draws per item (n)": ev.get("n"),
        "temperature": ev.get("temperature"),
        "PISM buckets (pool)": json.dumps(summary["pism"].get("buckets", {})),
        "CMAB buckets (pool)": json.dumps(summary["cmab"].get("buckets", {})),
        "PISM vs CMAB Spearman(lambda*, rho-bar)": rho,
        "detectable effect vs random (2 paired SE)": measured["detectable_effect"],
        "best arm vs base (paired SE)": f"{measured['best_arm']}: {measured['best_arm_vs_base_in_se']}",
        "gradus version": summary["gradus_version"],
        "config hash": summary["config_hash"],
    }
    tables = {
        "Comparison (paper structure: paradigm x training data)": rows,
        "GRPO mechanism and cost per arm": mechanism_rows(measured["arms"]),
        "Corpus": corpus_rows(Path(summary["pool"]), Path(summary["heldout"]), set(results[results["model"] == "base"]["id"])),
        "Selections (sizes)": selections,
        "Training runs": training,
        "Held-out accuracy and pass@k": pass_k,
        "Per task": per_task,
        "PISM x CMAB buckets": [{"PISM \\ CMAB": i, **{c: int(table.loc[i, c]) for c in table.columns}} for i in table.index],
    }
    report = write_html_report(out / "report.html", "gradus main job: difficulty-aware data selection for GRPO", headline, tables,
                               images, {k: summary[k] for k in ("select", "stage_wall_s", "config_hash", "seeds")}, notes=notes)
    (folder / "comparison.json").write_text(json.dumps({"rows": rows, "reading": notes, "pism_cmab_spearman": rho}, indent=2) + "\n")
    return {"comparison": rows, "reading": notes, **measured, "agreement": {"spearman_lambda_rho": rho,
                                                                "crosstab": {i: {c: int(table.loc[i, c]) for c in table.columns} for i in table.index}},
            "report": str(report), "plots": [str(p) for p in images]}


def _arm_sets(cfg: DemoConfig, record: dict) -> dict[str, dict]:
    return {label: record["arms"][arm.select_arm] for label, arm in cfg.arms.items()}
