"""The comparison table: every arm's held-out accuracy, with the noise it is measured under.

Two sources of spread, both reported: item sampling (a standard error over the held-out items'
per-item pass rates, and for a difference of two arms the paired standard error over the same
items) and training seeds (the sd across seeds, when the demo ran more than one). A difference
smaller than about two paired standard errors is not a finding.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import pandas as pd


def _se(values: pd.Series) -> float | None:
    n = len(values)
    return round(float(values.std(ddof=1) / math.sqrt(n)), 4) if n > 1 else None


def paired_difference(results: pd.DataFrame, a: str, b: str) -> tuple[float, float | None, int]:
    """mean and paired SE of (model a - model b) per-item pass rate on the items both evaluated."""
    pa = results[results["model"] == a].set_index("id")["pass_rate"]
    pb = results[results["model"] == b].set_index("id")["pass_rate"]
    both = pa.index.intersection(pb.index)
    diff = pa[both] - pb[both]
    return round(float(diff.mean()), 4) if len(diff) else float("nan"), _se(diff), len(diff)


def paradigm(sets: Mapping[str, Any]) -> str:
    return "SFT+GRPO" if "sft" in sets else "GRPO-only"


def comparison_rows(results: pd.DataFrame, arms: Mapping[str, Mapping[str, Any]], seeds: Sequence[int],
                    reference: str = "random") -> list[dict[str, Any]]:
    """One row for the base model and one per arm, in the paper's structure (paradigm, data, accuracy).

    `results`: eval rows (model, id, task, pass_rate) of models `base` and `<arm>-s<seed>`.
    `arms`: label -> {"sft": {"selection", "count"}?, "grpo": {...}} (the selection job's arm record).
    Accuracy is the mean over seeds of pass@1; `vs_base` / `vs_<reference>` are paired differences
    (seed 0's run, the one every arm has) with their paired SE.
    """
    tasks = sorted(results["task"].unique())
    ok = results[results["pass_rate"].notna()]

    def acc(model: str, task: str | None = None) -> float:
        rows = ok[ok["model"] == model]
        rows = rows if task is None else rows[rows["task"] == task]
        return float(rows["pass_rate"].mean()) if len(rows) else float("nan")

    base = ok[ok["model"] == "base"]["pass_rate"]
    table = [{"paradigm": "—", "data": "base (warm start)", "train_sets": "", "acc": round(acc("base"), 4), "se_items": _se(base),
              "sd_seeds": None, "vs_base": 0.0, "vs_base_se": None, f"vs_{reference}": None,
              **{t: round(acc("base", t), 3) for t in tasks}}]
    first = seeds[0]
    for label, sets in arms.items():
        runs = [f"{label}-s{s}" for s in seeds]
        accs = [acc(r) for r in runs]
        mean = sum(accs) / len(accs)
        d_base, se_base, _ = paired_difference(ok, f"{label}-s{first}", "base")
        row = {
            "paradigm": paradigm(sets),
            "data": label,
            "train_sets": " + ".join(f"{role.upper()}({s['selection']}, {s['count']})" for role, s in sets.items()),
            "acc": round(mean, 4),
            "se_items": _se(ok[ok["model"] == f"{label}-s{first}"]["pass_rate"]),
            "sd_seeds": round(float(pd.Series(accs).std(ddof=1)), 4) if len(accs) > 1 else None,
            "vs_base": d_base,
            "vs_base_se": se_base,
            f"vs_{reference}": None,
            **{t: round(sum(acc(r, t) for r in runs) / len(runs), 3) for t in tasks},
        }
        if reference in arms and label != reference:
            d, se, _ = paired_difference(ok, f"{label}-s{first}", f"{reference}-s{first}")
            row[f"vs_{reference}"] = d
            row[f"vs_{reference}_se"] = se
        table.append(row)
    return table


def reading(rows: Sequence[Mapping[str, Any]], reference: str = "random") -> list[str]:
    """Plain sentences on what the table does and does not show (for the report and docs)."""
    lines = []
    arms = [r for r in rows if r["data"] != "base (warm start)"]
    if not arms:
        return lines
    best = max(arms, key=lambda r: r["acc"])
    lines.append(f"Highest held-out accuracy: {best['data']} ({best['acc']:.3f}); base {rows[0]['acc']:.3f}.")
    for r in arms:
        se = r.get("vs_base_se")
        if se:
            verdict = "beyond" if abs(r["vs_base"]) > 2 * se else "within"
            lines.append(f"{r['data']}: {r['vs_base']:+.3f} vs base (paired SE {se:.3f}, {verdict} 2 SE).")
        d, se_ref = r.get(f"vs_{reference}"), r.get(f"vs_{reference}_se")
        if d is not None and se_ref:
            verdict = "beyond" if abs(d) > 2 * se_ref else "within"
            lines.append(f"{r['data']}: {d:+.3f} vs {reference} (paired SE {se_ref:.3f}, {verdict} 2 SE).")
    return lines
