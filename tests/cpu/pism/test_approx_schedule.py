"""The approximate PISM schedule (`pism.schedule: approx`) against the exact one on random outcome tables.

Its stated bound: when a ratio's success rate follows the configured Beta prior, the approximate
pass/fail of that ratio differs from the one all K draws give with probability below `delta`.
The tables here draw each rate from that prior, then K seeded Bernoulli outcomes; the exact
decision is computed from the full row by the definition (Pc = successes / K < tau fails).
Disagreements over N rows are a sum of independent indicators each with mean < delta, so they
exceed N delta + z sqrt(N delta (1 - delta)) with probability below 1e-3 at z = 3.09.
"""
import math
import random

import numpy as np
import pytest

from engine.config import ConfigError, from_dict
from engine.pism import PismConfig, SampleSchedule
from engine.pism.schedule import fit_prior, predicted_pass

Z_999 = 3.09  # one-sided 0.999 normal quantile


def _cfg(draws, tau, delta, alpha, beta, ratios=(0.0,), search="linear", schedule="approx"):
    return from_dict(PismConfig, {"ratios": list(ratios), "draws": draws, "tau": tau, "schedule": schedule,
                                  "approx": {"delta": delta, "prior_alpha": alpha, "prior_beta": beta, "search": search}})


def _run(cfg, table):
    s = SampleSchedule(cfg)
    while (nxt := s.next_draw()) is not None:
        s.record(nxt[0], table[nxt[0]][nxt[1]])
    return s


@pytest.mark.parametrize("s,n,draws,need,alpha,beta", [
    (0, 3, 10, 1, 0.2, 0.3), (0, 1, 10, 1, 1.0, 1.0), (1, 4, 10, 3, 0.5, 2.0), (2, 5, 8, 4, 2.0, 0.7), (0, 0, 5, 2, 0.3, 0.3),
])
def test_predicted_pass_matches_monte_carlo(s, n, draws, need, alpha, beta):
    """The beta-binomial formula against sampling the posterior rate and then the draws left."""
    rng = np.random.default_rng(7)
    trials = 200_000
    p = rng.beta(alpha + s, beta + n - s, trials)
    hits = ((s + rng.binomial(draws - n, p)) >= need).mean()
    want = predicted_pass(s, n, draws, need, alpha, beta)
    se = math.sqrt(max(want * (1 - want), 1e-12) / trials)
    assert abs(hits - want) <= 4.5 * se + 1e-9, (hits, want)


def test_predicted_pass_is_certain_once_decided():
    assert predicted_pass(1, 1, 10, 1, 0.2, 0.2) == 1.0  # the needed success is in
    assert predicted_pass(0, 9, 10, 2, 0.2, 0.2) == 0.0  # one draw left cannot bring two successes


TABLE_CASES = [
    (10, 0.1, 0.1, 0.68, 1.54),  # the paper's K and tau, the tiny model's fitted prior and shipped delta
    (10, 0.1, 0.02, 0.05, 0.3),
    (10, 0.3, 0.05, 0.3, 0.5),
    (6, 0.5, 0.05, 1.0, 1.0),
    (20, 0.1, 0.02, 0.1, 0.4),
]


def _upper(n, delta):
    """The most disagreements n decisions, each wrong with probability below delta, show at the 1e-3 level."""
    return n * delta + Z_999 * math.sqrt(n * delta * (1 - delta))


@pytest.mark.parametrize("draws,tau,delta,alpha,beta", TABLE_CASES)
def test_approx_decisions_disagree_with_exact_within_delta(draws, tau, delta, alpha, beta):
    cfg = _cfg(draws, tau, delta, alpha, beta)
    exact_cfg = _cfg(draws, tau, delta, alpha, beta, schedule="adaptive")
    rng = random.Random(draws * 100 + round(tau * 10) + round(delta * 1000))
    n_rows, wrong, approx_draws, exact_draws = 6000, 0, 0, 0
    for _ in range(n_rows):
        p = rng.betavariate(alpha, beta)
        row = [rng.random() < p for _ in range(draws)]
        exact_fail = sum(row) / draws < tau - 1e-12  # the definition on the full row
        a = _run(cfg, [row])
        wrong += a.unsolved != exact_fail
        approx_draws += a.generations
        exact_draws += _run(exact_cfg, [row]).generations
    assert wrong <= _upper(n_rows, delta), (wrong, _upper(n_rows, delta))
    assert approx_draws < 0.95 * exact_draws, (approx_draws, exact_draws)  # it does stop earlier


@pytest.mark.parametrize("draws,tau,delta,alpha,beta", TABLE_CASES[:3])
def test_a_samples_lambda_star_differs_only_through_its_decided_ratios(draws, tau, delta, alpha, beta):
    """Whole samples (every ratio's rate from the prior): lambda* or the unsolved flag differs from the
    full table's only when one of the ratios the walk decided did, so within delta x decided ratios."""
    ratios = [round(0.1 * i, 1) for i in range(10)]
    cfg = _cfg(draws, tau, delta, alpha, beta, ratios)
    rng = random.Random(draws + round(delta * 1000))
    n_samples, differ, decided = 3000, 0, 0
    for _ in range(n_samples):
        table = [[rng.random() < p for _ in range(draws)] for p in (rng.betavariate(alpha, beta) for _ in ratios)]
        pc = [sum(row) / draws for row in table]
        lam = next((ratios[i] for i, x in enumerate(pc) if x < tau - 1e-12), None)
        s = _run(cfg, table)
        differ += (s.lambda_star, s.unsolved) != (lam, pc[0] < tau - 1e-12)
        decided += sum(d is not None for d in s.decided)
    assert differ <= _upper(decided, delta), (differ, decided)
    assert differ > 0  # not vacuous: early stops do change some samples


def test_a_wrong_prior_is_what_breaks_the_bound():
    """The bound is the prior's: rates near tau that the prior calls rare make the early stops wrong
    far more often than delta (why the benchmark fits the prior to an exact pilot run)."""
    cfg = _cfg(10, 0.1, 0.02, 0.05, 0.05)
    rng = random.Random(3)
    wrong = 0
    for _ in range(2000):
        row = [rng.random() < 0.15 for _ in range(10)]
        wrong += _run(cfg, [row]).unsolved != (sum(row) == 0)
    assert wrong > 2000 * 0.02 * 5


def test_fit_prior_recovers_the_generating_prior():
    rng = random.Random(11)
    rows = []
    for _ in range(4000):
        p = rng.betavariate(0.3, 0.6)
        n = s = 0
        while s < 1 and n < 10:  # the exact K = 10, tau = 0.1 stop: first success or ten misses
            n += 1
            s += rng.random() < p
        rows.append((n, s))
    a, b = fit_prior(rows)
    assert a == pytest.approx(0.3, rel=0.2) and b == pytest.approx(0.6, rel=0.25)


def _monotone_table(first_fail, n_ratios, draws):
    """Every draw right below `first_fail`, every draw wrong from it on (None: never fails)."""
    stop = n_ratios if first_fail is None else first_fail
    return [[i < stop] * draws for i in range(n_ratios)]


@pytest.mark.parametrize("first_fail", [None, 0, 1, 4, 5, 7, 9])
def test_bisect_finds_lambda_star_of_a_monotone_table_in_few_ratios(first_fail):
    ratios = [round(0.1 * i, 1) for i in range(10)]
    table = _monotone_table(first_fail, 10, 10)
    exact = _run(_cfg(10, 0.1, 0.02, 0.2, 0.2, ratios, schedule="adaptive"), table)
    s = _run(_cfg(10, 0.1, 0.02, 0.2, 0.2, ratios, search="bisect"), table)
    assert (s.lambda_star, s.unsolved, s.bucket) == (exact.lambda_star, exact.unsolved, exact.bucket)
    visited = [i for i, n in enumerate(s.runs) if n]
    assert visited[0] == 0 and s.runs[0] >= 1  # ratio 0 first: the unsolved flag and CMAB's clean answer
    assert len(visited) <= 1 + math.ceil(math.log2(10))
    if first_fail is None:  # never failing: it skips most ratios (a failing sample can pay for extra failing ones)
        assert s.generations < exact.generations


@pytest.mark.parametrize("bad", [{"delta": 0.0}, {"delta": 0.5}, {"prior_alpha": 0.0}, {"prior_beta": -1.0}, {"min_draws": 0}, {"min_draws": 11}])
def test_bad_approx_config_is_rejected(bad):
    with pytest.raises(ConfigError, match="pism.approx"):
        from_dict(PismConfig, {"schedule": "approx", "approx": bad})
