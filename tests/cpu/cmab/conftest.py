"""Shared by the CMAB tests: a few test-split samples of every task family from the warm corpus."""
from collections import defaultdict

import pytest

from engine.data.shards import iter_samples


def _per_family(corpus, n):
    per, picked = defaultdict(int), []
    for s in iter_samples(corpus / "test"):
        if per[s.task] < n:
            picked.append(s)
            per[s.task] += 1
    return picked


@pytest.fixture(scope="module")
def samples(warm_corpus):
    """Two samples per family."""
    return _per_family(warm_corpus, 2)
