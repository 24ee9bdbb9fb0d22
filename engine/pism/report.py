"""PISM plots: masking survival curve (share still solved vs mask ratio, per task) and bucket counts."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

BUCKETS = ("easy", "mid", "hard", "unsolved")


def survival(lambda_stars: Sequence[float | None], ratios: Sequence[float]) -> list[float]:
    """Share of samples still solved at each ratio: lambda* is None / NaN (never failed) or above the ratio."""
    n = len(lambda_stars)
    return [sum(1 for lam in lambda_stars if lam is None or lam != lam or lam > r + 1e-9) / n if n else 0.0 for r in ratios]


def write_plots(frame, ratios: Sequence[float], out_dir: Path, title: str = "") -> list[Path]:
    """survival.png and buckets.png from a scores frame (rows without errors)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    ok = frame[frame["error"].isna()]
    tasks = sorted(ok["task"].unique())

    fig, ax = plt.subplots(figsize=(6, 4))
    for task in tasks:
        lams = list(ok.loc[ok["task"] == task, "lambda_star"])
        ax.plot(ratios, survival(lams, ratios), marker="o", label=f"{task} (n={len(lams)})")
    ax.set_xlabel("mask ratio")
    ax.set_ylabel("share still solved (Pc >= tau)")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"PISM survival {title}".strip())
    ax.legend(fontsize=7)
    fig.tight_layout()
    surv = out_dir / "survival.png"
    fig.savefig(surv, dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    width = 0.8 / max(1, len(tasks))
    for i, task in enumerate(tasks):
        counts = ok.loc[ok["task"] == task, "bucket"].fillna("unsolved").value_counts()
        ax.bar([b + i * width for b in range(len(BUCKETS))], [int(counts.get(b, 0)) for b in BUCKETS], width, label=task)
    ax.set_xticks([b + 0.4 - width / 2 for b in range(len(BUCKETS))], BUCKETS)
    ax.set_ylabel("samples")
    ax.set_title(f"PISM buckets {title}".strip())
    ax.legend(fontsize=7)
    fig.tight_layout()
    hist = out_dir / "buckets.png"
    fig.savefig(hist, dpi=120)
    plt.close(fig)
    return [surv, hist]
