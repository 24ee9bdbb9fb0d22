"""Pieces the benchmarks share: the embedded default's corpus slice and merged results files."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path


def per_family(samples, n: int) -> list:
    """The first `n` samples of every task family, in corpus order."""
    count, picked = defaultdict(int), []
    for s in samples:
        if count[s.task] < n:
            picked.append(s)
            count[s.task] += 1
    return picked


def merge_results(path: Path, record: dict, drop: tuple[str, ...] = ()) -> None:
    """Update this benchmark's keys in a results file other benchmarks also write; `drop`: keys of
    this benchmark that a new method supersedes, removed."""
    merged = json.loads(path.read_text()) if path.exists() else {}
    for key in drop:
        merged.pop(key, None)
    merged.update(record)
    merged.pop("not_measured", None)
    path.write_text(json.dumps(merged, indent=2) + "\n")
    print(json.dumps(record, indent=2))
