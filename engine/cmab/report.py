"""CMAB plots: rho-bar histogram per task (bucket bands shaded), mean layer profile per task, and
attention heatmaps of chosen samples (response tokens over input positions, image span marked)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from engine.cmab.config import CmabBuckets

BUCKETS = ("easy", "mid", "hard", "unsolved")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _shade_bands(ax, b: CmabBuckets, top: float) -> None:
    for lo, hi, color in ((b.hard_low, b.hard_high, "#f4cccc"), (b.easy_low, b.hard_low, "#fff2cc"), (b.hard_high, b.easy_high, "#fff2cc")):
        if hi > lo:
            ax.axvspan(lo, min(hi, top), color=color, zorder=0)


def write_rho_histograms(frame, buckets: CmabBuckets, path: Path, title: str = "") -> Path:
    """One panel per task: rho-bar of scored samples; hard band red, mid bands yellow, easy unshaded."""
    plt = _plt()
    ok = frame[frame["rho_bar"].notna()]
    tasks = sorted(ok["task"].unique()) or ["(none)"]
    cols = min(3, len(tasks))
    rows = math.ceil(len(tasks) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    top = max([buckets.easy_high * 1.1] + [float(v) for v in ok["rho_bar"]])
    bins = [top * i / 40 for i in range(41)]
    for ax, task in zip(axes.flat, tasks):
        values = [float(v) for v in ok.loc[ok["task"] == task, "rho_bar"]]
        _shade_bands(ax, buckets, top)
        ax.hist(values, bins=bins, color="#3c78d8")
        ax.set_title(f"{task} (n={len(values)})", fontsize=9)
        ax.set_xlabel("rho-bar (image / text attention)")
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    fig.suptitle(f"CMAB rho-bar per task {title}".strip())
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_layer_profiles(frame, path: Path, title: str = "") -> Path:
    """Mean over a task's scored samples of each layer's image/text attention ratio."""
    import numpy as np

    plt = _plt()
    ok = frame[frame["rho_bar"].notna()]
    fig, ax = plt.subplots(figsize=(6, 4))
    for task, group in sorted(ok.groupby("task"), key=lambda kv: kv[0]):
        profile = np.mean(np.stack([np.asarray(p, dtype=float) for p in group["layer_profile"]]), axis=0)
        ax.plot(range(len(profile)), profile, marker="o", label=f"{task} (n={len(group)})")
    ax.set_xlabel("decoder layer")
    ax.set_ylabel("mean image / text ratio")
    ax.set_title(f"CMAB layer profile {title}".strip())
    if len(ok):
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_heatmap(rows: Sequence[Sequence[float]], image_spans: Sequence[Sequence[int]], prompt_len: int, path: Path, title: str) -> Path:
    """Rows min-max normalized one by one (as the reference plotted them), so each response
    token's pattern is visible whatever its scale; image span(s) shaded, response start marked."""
    import numpy as np

    plt = _plt()
    arr = np.asarray(rows, dtype=float)
    lo, hi = arr.min(axis=1, keepdims=True), arr.max(axis=1, keepdims=True)
    norm = (arr - lo) / np.where(hi > lo, hi - lo, 1.0)
    fig, ax = plt.subplots(figsize=(10, 1.5 + 0.25 * len(arr)))
    im = ax.imshow(norm, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0, vmax=1)
    for start, end in image_spans:
        ax.axvline(start - 0.5, color="red", linestyle="--", linewidth=1)
        ax.axvline(end - 0.5, color="red", linestyle="--", linewidth=1)
    ax.axvline(prompt_len - 0.5, color="white", linewidth=1)
    ax.set_xlabel("input position (red: image tokens; white: response starts)")
    ax.set_ylabel("response token")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="attention (row-normalized)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
