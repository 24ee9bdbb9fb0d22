"""pass@k with the unbiased estimator (Chen et al. 2021): 1 - C(n-c, k) / C(n, k), averaged over items."""
from __future__ import annotations

from math import comb
from typing import Iterable


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k draws (without replacement) from n samples, c correct, is correct."""
    if not (0 <= c <= n) or k < 1:
        raise ValueError(f"pass@k needs 0 <= c <= n and k >= 1, got n={n} c={c} k={k}")
    if n < k:
        raise ValueError(f"pass@{k} needs at least {k} samples per item, got n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def mean_pass_at_k(counts: Iterable[tuple[int, int]], k: int) -> float:
    """Average of pass@k over items given (n samples, c correct) per item."""
    values = [pass_at_k(n, c, k) for n, c in counts]
    if not values:
        raise ValueError("pass@k over zero items")
    return sum(values) / len(values)
