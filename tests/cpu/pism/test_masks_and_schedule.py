"""PISM masks (seeded, exact coverage) and schedules (exact: same lambda*/bucket as brute force)."""
import random

import numpy as np
import pytest
from PIL import Image

from engine.config import ConfigError, from_dict
from engine.vision_grid import VisionGrid
from engine.pism import BucketConfig, PismConfig, SampleSchedule, bucket_of, draw_seed, mask_image


TINY_GRID = VisionGrid(cell=28, min_pixels=112 * 112, max_pixels=112 * 112)  # the tiny model's processor (test_patch_grid.py reads it)


def _img(w=112, h=84):
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(1, 255, size=(h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("mode", ["rect", "pixel", "patch"])
def test_masks_are_reproducible_alone_and_cover_the_ratio(mode):
    img = _img(112, 112)
    seed = draw_seed(0, "sample-7", 0.3, 4)
    grid = TINY_GRID if mode == "patch" else None
    a = np.array(mask_image(img, 0.3, mode, seed, grid=grid))
    b = np.array(mask_image(img, 0.3, mode, draw_seed(0, "sample-7", 0.3, 4), grid=grid))  # recomputed, as another worker would
    assert (a == b).all()
    assert not (a == np.array(mask_image(img, 0.3, mode, draw_seed(0, "sample-7", 0.3, 5), grid=grid))).all()
    black = (a.sum(axis=2) == 0).mean()
    assert black == pytest.approx(0.3, abs=0.03)
    assert (np.array(mask_image(img, 0.0, mode, seed, grid=grid)) == np.array(img)).all()


def test_patch_mask_aligns_to_the_merged_patch_grid():
    a = np.array(mask_image(_img(112, 112), 0.5, "patch", 3, grid=TINY_GRID))
    blocks = (a.sum(axis=2) == 0).reshape(4, 28, 4, 28).transpose(0, 2, 1, 3).reshape(16, -1)
    assert set(blocks.mean(axis=1).tolist()) <= {0.0, 1.0}  # every 28x28 cell fully masked or untouched
    assert blocks.mean(axis=1).sum() == 8


def test_seed_depends_on_every_part():
    seeds = {draw_seed(*k) for k in [(0, "a", 0.1, 0), (1, "a", 0.1, 0), (0, "b", 0.1, 0), (0, "a", 0.2, 0), (0, "a", 0.1, 1)]}
    assert len(seeds) == 5


@pytest.mark.parametrize("lam,unsolved,inclusive,bucket", [
    (None, False, True, "easy"), (0.9, False, True, "easy"), (0.7, False, True, "easy"), (0.7, False, False, "mid"),
    (0.5, False, True, "mid"), (0.4, False, True, "hard"), (0.1, False, True, "hard"), (0.0, True, True, None),
])
def test_buckets_and_boundary_inclusivity(lam, unsolved, inclusive, bucket):
    assert bucket_of(lam, unsolved, BucketConfig(easy_inclusive=inclusive)) == bucket


def _brute(table, cfg):
    """The definitions of docs/methods.md#pism on the full K x ratios table: Pc = successes / K, lambda* = min ratio with Pc < tau."""
    pc = [sum(row) / cfg.draws for row in table]
    lam = next((cfg.ratios[i] for i, p in enumerate(pc) if p < cfg.tau - 1e-12), None)
    unsolved = pc[0] < cfg.tau - 1e-12
    return lam, unsolved, bucket_of(lam, unsolved, cfg.buckets)


def _run(cfg, table):
    s = SampleSchedule(cfg)
    while (nxt := s.next_draw()) is not None:
        s.record(nxt[0], table[nxt[0]][nxt[1]])
    return s


def _decided_at(row, cfg):
    """The fewest draws, in order, after which the ratio's pass/fail no longer depends on the rest."""
    for n in range(cfg.draws + 1):
        wins = sum(row[:n])
        if wins / cfg.draws >= cfg.tau - 1e-12 or (wins + cfg.draws - n) / cfg.draws < cfg.tau - 1e-12:
            return n
    raise AssertionError("a full row is always decided")


SCHEDULE_CASES = [(10, 0.1), (5, 0.4), (4, 1.0), (10, 0.3), (7, 0.5), (3, 0.34), (6, 0.05)]


@pytest.mark.parametrize("schedule", ["adaptive", "reference"])
@pytest.mark.parametrize("draws,tau", SCHEDULE_CASES)
def test_schedules_match_brute_force(schedule, draws, tau):
    cfg = from_dict(PismConfig, {"schedule": schedule, "draws": draws, "tau": tau})
    rng = random.Random(draws * 1000 + round(tau * 100))
    for _ in range(500):
        skill = rng.random()
        table = [[rng.random() < skill * (1 - r) for _ in range(draws)] for r in cfg.ratios]
        s = _run(cfg, table)
        assert (s.lambda_star, s.unsolved, s.bucket) == _brute(table, cfg), (table, s.runs)
        # every ratio it ran stopped exactly when decided: never early (wrong), never late (wasted draws)
        ran = [i for i, n in enumerate(s.runs) if n]
        assert all(s.runs[i] == _decided_at(table[i], cfg) for i in ran)
        last = len(cfg.ratios) - 1 if schedule == "reference" or s.lambda_star is None else cfg.ratios.index(s.lambda_star)
        assert ran == list(range(last + 1))  # reference: every ratio; adaptive: up to lambda*


@pytest.mark.parametrize("schedule", ["adaptive", "reference"])
def test_always_right_model_never_fails_when_tau_needs_several_successes(schedule):
    cfg = from_dict(PismConfig, {"schedule": schedule, "draws": 10, "tau": 0.3})
    s = _run(cfg, [[True] * 10 for _ in cfg.ratios])
    assert (s.lambda_star, s.unsolved, s.bucket) == (None, False, "easy")
    assert s.runs == [3] * len(cfg.ratios)  # three successes decide each ratio


@pytest.mark.parametrize("schedule", ["adaptive", "reference"])
def test_a_ratio_needing_several_successes_stops_once_decided(schedule):
    cfg = from_dict(PismConfig, {"schedule": schedule, "draws": 10, "tau": 0.3})
    # ratio 0 passes with its 6th draw (3rd win); ratio 1 fails after 9 draws (1 win; one draw left cannot make 3)
    table = [[False, False, True, True, False, True] + [False] * 4, [True] + [False] * 9] + [[True] * 10] * 8
    s = _run(cfg, table)
    assert (s.runs[:2], s.successes[:2], s.lambda_star, s.bucket) == ([6, 9], [3, 1], 0.1, "hard")


def test_adaptive_spends_the_minimum():
    cfg = PismConfig()
    s = SampleSchedule(cfg)
    outcomes = {0: [True], 1: [False, True], 2: [False] * 10}  # passes 0.0 and 0.1 quickly, fails 0.2
    while (nxt := s.next_draw()) is not None:
        s.record(nxt[0], outcomes[nxt[0]][nxt[1]])
    assert (s.generations, s.lambda_star, s.bucket) == (1 + 2 + 10, 0.2, "hard")


@pytest.mark.parametrize("bad,match", [
    ({"ratios": [0.1, 0.2]}, "ratios"), ({"draws": 0}, "draws"), ({"tau": 0.0}, "tau"), ({"tau": 1.5}, "tau"),
])
def test_bad_config_is_rejected(bad, match):
    with pytest.raises(ConfigError, match=match):
        from_dict(PismConfig, bad)


def test_patch_masks_need_the_engines_grid():
    with pytest.raises(ValueError, match="VisionGrid"):
        mask_image(_img(), 0.5, "patch", 3)


def test_config_hash_covers_only_settings_that_decide_records():
    """A user who tunes the approx schedule (or max_in_flight) while running the exact one must not
    invalidate finished scores: the demo ledger and the job's config hash key on decisive()."""
    from engine.config import config_hash
    from pipelines.pism import PismJobConfig

    base = PismJobConfig(input="in", output="out")
    tuned = PismJobConfig(input="in", output="elsewhere")
    tuned.pism.approx.delta, tuned.pism.max_in_flight, tuned.actors.max_actors = 0.2, 7, 3
    assert config_hash(base.scores_key()) == config_hash(tuned.scores_key())
    for job in (base, tuned):
        job.pism.schedule = "approx"
    assert config_hash(base.scores_key()) != config_hash(tuned.scores_key())  # now they decide the records
    other = PismJobConfig(input="in", output="out")
    other.pism.tau = 0.2
    assert config_hash(other.scores_key()) != config_hash(PismJobConfig(input="in", output="out").scores_key())


def test_shared_mask_draws_differ_by_sampling_seed_only():
    from engine.data.sample import Message, Sample
    from engine.pism.scorer import draw_request

    sample = Sample("s-1", [], [Message("user", "<image>How many?")], "3", "counting", "numeric")
    images = [_img(112, 112)]
    for mode, same_masks in (("independent", False), ("shared", True)):
        cfg = PismConfig(mask_draws=mode)
        reqs = [draw_request(cfg, sample, images, 5, k) for k in range(3)]  # ratio 0.5
        pixels = [np.asarray(r.images[0]).tobytes() for r in reqs]
        assert (len(set(pixels)) == 1) is same_masks
        assert len({r.seed for r in reqs}) == 3  # sampling seeds stay per draw in both modes
    with pytest.raises(ConfigError):
        PismConfig(mask_draws="per_ratio").validate()
