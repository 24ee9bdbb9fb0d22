"""The approximate PISM schedule (`pism.schedule: approx`) against the exact one on random outcome tables.

Its stated bound: when samples' success-rate curves follow the configured prior (`approx.curves`),
the reported lambda* lies outside the exact one's window (more than `lambda_tolerance` ratios off, or
another bucket or unsolved flag) with probability below `delta` per sample. The tables here draw
each sample's curve from that prior, then K seeded Bernoulli outcomes per ratio; the exact lambda*
is computed from the full table by the definition (the first ratio with Pc = successes / K < tau).
Misses over N samples are a sum of independent indicators each with mean < delta, so they exceed
N delta + z sqrt(N delta (1 - delta)) with probability below 1e-3 at z = 3.09.
"""
import math

import numpy as np
import pytest

from engine.config import ConfigError, from_dict
from engine.pism import PismConfig, SampleSchedule, bucket_of
from engine.pism.config import TINY_CURVES
from engine.pism.schedule import curve_rates, fit_curve_prior, replay

Z_999 = 3.09  # one-sided 0.999 normal quantile
RATIOS = [round(0.1 * i, 1) for i in range(10)]
# a coarse prior unlike the tiny model's: flat-and-solvable, dropping at 0.35, dropping at 0.75, unsolved
FOUR_CURVES = [[0.8, 0.0, 1.2, 0.05, 0.2], [0.5, 0.0, 0.35, 0.05, 0.3], [0.3, 0.05, 0.75, 0.1, 0.25], [0.03, 0.0, -0.1, 0.05, 0.25]]


def _cfg(curves, draws=10, tau=0.1, delta=0.01, tolerance=1, ratios=RATIOS, schedule="approx"):
    return from_dict(PismConfig, {"ratios": list(ratios), "draws": draws, "tau": tau, "schedule": schedule,
                                  "approx": {"delta": delta, "lambda_tolerance": tolerance, "curves": curves}})


def _tables(curves, n, draws, ratios, seed):
    """n full K x ratios outcome tables, each from a curve drawn from the prior."""
    rng = np.random.default_rng(seed)
    w = np.array([c[4] for c in curves])
    rates = curve_rates(curves, ratios)[rng.choice(len(curves), size=n, p=w / w.sum())]
    return rng.random((n, len(ratios), draws)) < rates[:, :, None]


def _exact(table, cfg):
    """lambda* index (len(ratios): never fails) by the definition on the full table."""
    pc = table.sum(axis=1) / cfg.draws
    return next((i for i, x in enumerate(pc) if x < cfg.tau - 1e-12), len(cfg.ratios))


def _label(j, cfg):
    return "unsolved" if j == 0 else bucket_of(cfg.ratios[j] if j < len(cfg.ratios) else None, False, cfg.buckets)


def _index(s, cfg):
    return len(cfg.ratios) if s.lambda_star is None else cfg.ratios.index(s.lambda_star)


def _upper(n, delta):
    """The most misses n samples, each missing with probability below delta, show at the 1e-3 level."""
    return n * delta + Z_999 * math.sqrt(n * delta * (1 - delta))


def _play(cfg, table):
    return replay(cfg, lambda i, k: bool(table[i, k]))


BOUND_CASES = [  # curves, K, tau, delta, lambda_tolerance
    (TINY_CURVES, 10, 0.1, 0.01, 1),  # the shipped prior and settings
    (TINY_CURVES, 10, 0.1, 0.05, 1),
    (TINY_CURVES, 10, 0.1, 0.05, 0),
    (FOUR_CURVES, 10, 0.1, 0.02, 1),
    (FOUR_CURVES, 8, 0.3, 0.05, 1),  # three successes of eight pass a ratio
]


@pytest.mark.parametrize("curves,draws,tau,delta,tolerance", BOUND_CASES)
def test_approx_lambda_stays_in_the_exact_window_within_delta(curves, draws, tau, delta, tolerance):
    cfg = _cfg(curves, draws, tau, delta, tolerance)
    exact_cfg = _cfg(curves, draws, tau, schedule="adaptive")
    n = 3000
    misses = approx_draws = exact_draws = 0
    for table in _tables(curves, n, draws, RATIOS, seed=draws * 100 + round(delta * 1000) + tolerance):
        j, s = _exact(table, cfg), _play(cfg, table)
        a = _index(s, cfg)
        misses += _label(a, cfg) != _label(j, cfg) or abs(a - j) > tolerance
        assert (s.lambda_star, s.unsolved, s.bucket) == (None if a == len(RATIOS) else RATIOS[a], a == 0, None if a == 0 else _label(a, cfg))
        approx_draws += s.generations
        ex = _play(exact_cfg, table)
        assert _index(ex, cfg) == j  # the exact schedule is the definition
        exact_draws += ex.generations
    assert misses <= _upper(n, delta), (misses, _upper(n, delta))
    assert approx_draws < 0.95 * exact_draws, (approx_draws, exact_draws)  # it does stop earlier


@pytest.mark.parametrize("curves,delta", [(TINY_CURVES, 0.1), (FOUR_CURVES, 0.2)])
def test_the_posterior_at_the_stop_is_calibrated(curves, delta):
    """Sharper than the bound: a sample stops with P(exact lambda* in the window | its draws) = confidence,
    so the misses over N samples should be the sum of (1 - confidence), within 3.09 standard deviations
    either way (a posterior that is wrong in either direction fails this)."""
    cfg = _cfg(curves, delta=delta)
    misses = expected = var = 0.0
    for table in _tables(curves, 3000, 10, RATIOS, seed=21):
        j, s = _exact(table, cfg), _play(cfg, table)
        a = _index(s, cfg)
        misses += _label(a, cfg) != _label(j, cfg) or abs(a - j) > 1
        expected += 1.0 - s.confidence
        var += s.confidence * (1.0 - s.confidence)
    assert abs(misses - expected) <= Z_999 * math.sqrt(var) + 1, (misses, expected, var)
    assert expected > 20  # enough misses expected for the check to bite


def test_a_looser_delta_does_miss_and_saves_more():
    """Not vacuous: at delta 0.2 some samples leave the window (still within the bound), and draws drop
    further than at 0.01."""
    tables = _tables(TINY_CURVES, 2000, 10, RATIOS, seed=5)
    tight, loose = _cfg(TINY_CURVES, delta=0.01), _cfg(TINY_CURVES, delta=0.2)
    misses, draws = {0.01: 0, 0.2: 0}, {0.01: 0, 0.2: 0}
    for table in tables:
        j = _exact(table, tight)
        for d, cfg in ((0.01, tight), (0.2, loose)):
            s = _play(cfg, table)
            a = _index(s, cfg)
            misses[d] += _label(a, cfg) != _label(j, cfg) or abs(a - j) > 1
            draws[d] += s.generations
    assert 0 < misses[0.2] <= _upper(2000, 0.2) and misses[0.01] < misses[0.2]
    assert draws[0.2] < 0.9 * draws[0.01]


def test_posterior_over_lambda_matches_simulation():
    """lambda_posterior after a few draws against rejection sampling: full tables from the prior whose
    first draws are the observed ones, tallied by their exact lambda*."""
    cfg = _cfg(FOUR_CURVES, draws=4, tau=0.5, delta=0.01)  # two successes of four pass a ratio
    observed = {(0, 0): True, (0, 1): False, (0, 2): True, (1, 0): False, (1, 1): True, (1, 2): False}
    s = SampleSchedule(cfg)
    for (i, _), ok in observed.items():
        s.record(i, ok)
    want = s.lambda_posterior()
    tables = _tables(FOUR_CURVES, 400_000, 4, RATIOS, seed=9)
    keep = np.all([tables[:, i, k] == ok for (i, k), ok in observed.items()], axis=0)
    got = np.bincount([_exact(t, cfg) for t in tables[keep]], minlength=len(RATIOS) + 1) / keep.sum()
    se = np.sqrt(np.maximum(want * (1 - want), 1e-12) / keep.sum())
    assert np.all(np.abs(got - want) <= 4.5 * se + 1e-9), (got.round(4), want.round(4))


def test_never_needs_a_draw_the_reference_run_did_not_make():
    """Replays read only recorded draws: each ratio's draws in order, none past where the exact
    schedules stop that ratio (its first success at K = 10, tau = 0.1)."""
    cfg, ref = _cfg(TINY_CURVES, delta=0.05), _cfg(TINY_CURVES, schedule="reference")
    for table in _tables(TINY_CURVES, 500, 10, RATIOS, seed=3):
        r = _play(ref, table)
        asked = []
        s = replay(cfg, lambda i, k: asked.append((i, k)) or bool(table[i, k]))
        assert all(k < r.runs[i] for i, k in asked)
        assert sorted(asked) == [(i, k) for i in range(len(RATIOS)) for k in range(s.runs[i])]
        assert not any(s.decided[i] is False and s.successes[i] >= cfg.successes_needed for i in range(len(RATIOS)))


def test_a_wrong_prior_is_what_breaks_the_bound():
    """The bound is the prior's: a prior that has every sample either solid or hopeless, run on samples
    whose rates sit near tau everywhere, misses the window far more often than delta (why the
    benchmark fits the prior to an exact run)."""
    wrong_prior = [[0.95, 0.0, 1.2, 0.05, 0.5], [0.01, 0.0, -0.1, 0.05, 0.5]]
    cfg = _cfg(wrong_prior, delta=0.02)
    tables = _tables([[0.15, 0.15, 0.5, 0.1, 1.0]], 1000, 10, RATIOS, seed=4)
    misses = sum(_label(a, cfg) != _label(j, cfg) or abs(a - j) > 1
                 for a, j in ((_index(_play(cfg, t), cfg), _exact(t, cfg)) for t in tables))
    assert misses > 5 * _upper(1000, 0.02)


def test_fit_curve_prior_recovers_the_generating_prior():
    """Fitted on exact (reference-schedule) records of a known mixture, the prior predicts lambda* as the
    generating one does."""
    tables = _tables(FOUR_CURVES, 800, 10, RATIOS, seed=11)
    ref = _cfg(FOUR_CURVES, schedule="reference")
    counts = [(s.runs, s.successes) for s in (_play(ref, t) for t in tables)]
    fitted = fit_curve_prior(counts, RATIOS)
    assert abs(sum(c[4] for c in fitted) - 1.0) < 1e-3 and all(c[4] >= 0.005 for c in fitted)
    truth = SampleSchedule(_cfg(FOUR_CURVES)).lambda_posterior()
    got = SampleSchedule(_cfg(fitted)).lambda_posterior()
    assert np.abs(got - truth).max() < 0.05, (got.round(3), truth.round(3))


def test_exact_schedules_ignore_the_approx_settings():
    cfg = _cfg([[0.5, 0.0, 0.5, 0.1, 1.0]], delta=0.3, schedule="adaptive")
    table = np.zeros((10, 10), dtype=bool)
    table[0, 9] = True  # ratio 0 passes on its last draw, ratio 1 fails after ten misses
    s = _play(cfg, table)
    assert (s.runs[:2], s.lambda_star, s.bucket, s.predicted) == ([10, 10], 0.1, "hard", False)


@pytest.mark.parametrize("bad", [{"delta": 0.0}, {"delta": 0.5}, {"lambda_tolerance": -1}, {"curves": []},
                                 {"curves": [[0.5, 0.6, 0.5, 0.1, 1.0]]}, {"curves": [[0.5, 0.0, 0.5, 0.0, 1.0]]},
                                 {"curves": [[0.5, 0.0, 0.5, 0.1]]}, {"curves": [[0.5, 0.0, 0.5, 0.1, 0.0]]}])
def test_bad_approx_config_is_rejected(bad):
    with pytest.raises(ConfigError, match="pism.approx"):
        from_dict(PismConfig, {"schedule": "approx", "approx": bad})
