"""PISM masks (seeded, exact coverage) and schedules (exact: same lambda*/bucket as brute force)."""
import random

import numpy as np
import pytest
from PIL import Image

from engine.config import ConfigError, from_dict
from engine.pism import BucketConfig, PismConfig, SampleSchedule, bucket_of, draw_seed, mask_image


def _img(w=112, h=84):
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(1, 255, size=(h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("mode", ["rect", "pixel", "patch"])
def test_masks_are_reproducible_alone_and_cover_the_ratio(mode):
    img = _img(112, 112)
    seed = draw_seed(0, "sample-7", 0.3, 4)
    a = np.array(mask_image(img, 0.3, mode, seed))
    b = np.array(mask_image(img, 0.3, mode, draw_seed(0, "sample-7", 0.3, 4)))  # recomputed, as another worker would
    assert (a == b).all()
    assert not (a == np.array(mask_image(img, 0.3, mode, draw_seed(0, "sample-7", 0.3, 5)))).all()
    black = (a.sum(axis=2) == 0).mean()
    assert black == pytest.approx(0.3, abs=0.03)
    assert (np.array(mask_image(img, 0.0, mode, seed)) == np.array(img)).all()


def test_patch_mask_aligns_to_the_merged_patch_grid():
    a = np.array(mask_image(_img(112, 112), 0.5, "patch", 3))
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
    need = cfg.successes_needed
    passes = [sum(row) >= need for row in table]
    lam = next((cfg.ratios[i] for i, ok in enumerate(passes) if not ok), None)
    return lam, not passes[0], bucket_of(lam, not passes[0], cfg.buckets)


@pytest.mark.parametrize("schedule", ["adaptive", "reference"])
@pytest.mark.parametrize("draws,tau", [(10, 0.1), (5, 0.4), (4, 1.0)])
def test_schedules_match_brute_force(schedule, draws, tau):
    cfg = from_dict(PismConfig, {"schedule": schedule, "draws": draws, "tau": tau})
    rng = random.Random(draws)
    for _ in range(500):
        skill = rng.random()
        table = [[rng.random() < skill * (1 - r) for _ in range(draws)] for r in cfg.ratios]
        s = SampleSchedule(cfg)
        while (nxt := s.next_draw()) is not None:
            s.record(nxt[0], table[nxt[0]][nxt[1]])
        if schedule == "reference" and cfg.successes_needed > 1:
            continue  # the reference code's first-success exit only decides ratios when one success passes
        assert (s.lambda_star, s.unsolved, s.bucket) == _brute(table, cfg)


def test_adaptive_spends_the_minimum():
    cfg = PismConfig()
    s = SampleSchedule(cfg)
    outcomes = {0: [True], 1: [False, True], 2: [False] * 10}  # passes 0.0 and 0.1 quickly, fails 0.2
    while (nxt := s.next_draw()) is not None:
        s.record(nxt[0], outcomes[nxt[0]][nxt[1]])
    assert (s.generations, s.lambda_star, s.bucket) == (1 + 2 + 10, 0.2, "hard")


def test_bad_config_is_rejected():
    with pytest.raises(ConfigError, match="ratios"):
        from_dict(PismConfig, {"ratios": [0.1, 0.2]})
