"""The online difficulty sampler (rl/sampler): choice, learning, determinism, state, prior, write-back.

The comparison test is unit-scoped on a SIMULATED learner, not a model: a table of true per-sample
pass rates that drift as training proceeds (a sample the learner trains on with a gradient gets
easier; everything gets a little easier each step), and a difficulty scorer that puts 30% of the
samples in a random stratum. Verdicts are Bernoulli draws from that table.
The tiny-model measurement is benchmarks/sampler.py.
"""
from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from engine.config import ConfigError
from engine.data.sample import ImageRef, Message, Sample
from engine.data.shards import write_shards
from engine.shaping.store import ScoreSource, build_store, read_store
from rl.sampler import OnlineDifficultySampler, SamplerConfig, build_sampler, informative_probability
from rl.sampler.config import PriorConfig
from rl.sampler.writeback import write_back, write_posterior

GROUP = 8


# ----- the simulated learner -----

class SimulatedLearner:
    """True pass rates per sample (logits), drifting: +learn per trained group that had a gradient, +drift per step."""

    def __init__(self, n: int, seed: int, learn: float = 0.1, drift: float = 0.01, noise: float = 0.3):
        rng = np.random.default_rng(1000 + seed)
        kind = rng.choice(["easy", "mid", "hard", "unsolved"], size=n, p=[0.4, 0.2, 0.15, 0.25])
        centre = {"easy": 3.0, "mid": 0.0, "hard": -1.5, "unsolved": -4.0}
        self.logit = np.array([centre[k] + rng.normal(0, 0.5) for k in kind])
        self.learn, self.drift = learn, drift
        self.rng = np.random.default_rng(2000 + seed)
        # what a difficulty scorer says about the start model: the true class, or (share `noise`) a random one
        noisy = rng.random(n) < noise
        self.strata = np.where(noisy, rng.choice(["easy", "mid", "hard", "unsolved"], size=n), kind)

    def p(self) -> np.ndarray:
        return 1 / (1 + np.exp(-self.logit))

    def rollouts(self, idx: list[int]) -> tuple[list[int], list[bool], float]:
        """One group per prompt; the learner trains on them. Returns (ids, verdicts, informative share)."""
        p = self.p()
        ids, verdicts, informative = [], [], 0
        for i in idx:
            group = list(self.rng.random(GROUP) < p[i])
            ids += [i] * GROUP
            verdicts += group
            if 0 < sum(group) < GROUP:
                informative += 1
                self.logit[i] += self.learn
        self.logit += self.drift
        return ids, verdicts, informative / len(idx)


def sampler_for(sim: SimulatedLearner, seed: int, **overrides) -> OnlineDifficultySampler:
    cfg = SamplerConfig(kind="online", **overrides)
    infos = [{"id": str(i), "difficulty": {"metrics": {"pism": {"stratum": str(s)}}}} for i, s in enumerate(sim.strata)]
    cfg.prior.scorers = ["pism"]
    return build_sampler(cfg, infos, seed)[0]


def run_arm(arm: str, seed: int, n: int = 400, steps: int = 60, batch: int = 16) -> float:
    sim = SimulatedLearner(n, seed)
    rng = np.random.default_rng(seed)
    sampler = sampler_for(sim, seed) if arm == "online" else None
    pool = np.arange(n) if arm == "uniform" else np.flatnonzero(np.isin(sim.strata, ["mid", "hard"]))
    order = list(rng.permutation(pool))
    shares = []
    for _ in range(steps):
        if sampler is not None:
            idx = [int(i) for i in sampler.next_batch(batch)]
        else:  # the trainer's own order: shuffled epochs over the (static) selection
            if len(order) < batch:
                order += list(rng.permutation(pool))
            idx, order = order[:batch], order[batch:]
        ids, verdicts, share = sim.rollouts(idx)
        if sampler is not None:
            sampler.update([str(i) for i in ids], verdicts)
        shares.append(share)
    return float(np.mean(shares))


def test_online_beats_static_mid_hard_and_uniform_on_a_simulated_learner():
    seeds = range(4)
    share = {arm: float(np.mean([run_arm(arm, s) for s in seeds])) for arm in ("online", "mid_hard", "uniform")}
    assert share["online"] > share["mid_hard"] + 0.05, share
    assert share["mid_hard"] > share["uniform"] + 0.05, share


# ----- choice rules -----

def plain(n: int = 40, **overrides) -> OnlineDifficultySampler:
    cfg = SamplerConfig(kind="online", **overrides)
    return OnlineDifficultySampler([f"s{i}" for i in range(n)], [2.0] * n, [2.0] * n, cfg=cfg, seed=7)


def test_same_seed_same_batches_other_seed_other_batches():
    def trace(seed):
        sim = SimulatedLearner(120, 0)
        s = sampler_for(sim, seed)
        out = []
        for _ in range(10):
            batch = s.next_batch(8)
            ids, verdicts, _ = sim.rollouts([int(i) for i in batch])
            s.update([str(i) for i in ids], verdicts)
            out.append(batch)
        return out

    assert trace(3) == trace(3)
    assert trace(3) != trace(4)


def test_state_round_trip_continues_exactly_where_it_stopped():
    sim_a, sim_b = SimulatedLearner(120, 1), SimulatedLearner(120, 1)
    a, b = sampler_for(sim_a, 5), sampler_for(sim_b, 5)
    for _ in range(6):  # the same history for both
        for s, sim in ((a, sim_a), (b, sim_b)):
            ids, verdicts, _ = sim.rollouts([int(i) for i in s.next_batch(8)])
            s.update([str(i) for i in ids], verdicts)
    saved = json.loads(json.dumps(b.state_dict()))  # as written to the checkpoint
    resumed = sampler_for(SimulatedLearner(120, 1), 99)  # fresh object, another seed: the state decides
    resumed.load_state_dict(saved)
    for _ in range(5):
        want = a.next_batch(8)
        assert resumed.next_batch(8) == want
        ids, verdicts, _ = sim_a.rollouts([int(i) for i in want])
        a.update([str(i) for i in ids], verdicts)
        resumed.update([str(i) for i in ids], verdicts)
    assert resumed.posterior() == a.posterior()


def test_state_from_other_samples_is_refused():
    state = plain(40).state_dict()
    with pytest.raises(ConfigError, match="another set of samples"):
        plain(41).load_state_dict(state)


def test_band_prefers_pass_rates_near_half_and_skips_all_equal_history():
    n = 30
    cfg = SamplerConfig(kind="online", epsilon=0.0, exploration="mean", skip_streak=2, skip_explore=0.0, cooldown_steps=0)
    ids = [f"s{i}" for i in range(n)]
    # s0-s9 easy (mean 0.9), s10-s19 mid (0.5), s20-s29 unsolved (0.05)
    means = [0.9] * 10 + [0.5] * 10 + [0.05] * 10
    s = OnlineDifficultySampler(ids, [m * 4 for m in means], [(1 - m) * 4 for m in means], cfg=cfg, seed=0)
    assert set(s.next_batch(10)) == set(ids[10:20])
    # s10-s14 give two all-pass groups in a row: predicted to give no gradient, skipped ...
    for _ in range(2):
        s.update([i for i in ids[10:15] for _ in range(4)], [True, True, True, True] * 5)
    batch = s.next_batch(5)
    assert set(batch) == set(ids[15:20])
    # ... one mixed group ends the streak
    s.update(["s10"] * 4, [True, False, True, True])
    assert "s10" in s.next_batch(6)


def test_unjudged_verdicts_count_neither_way_and_unknown_ids_are_errors():
    s = plain(4)
    s.update(["s0", "s0", "s1"], [None, None, True])
    post = {r["id"]: r for r in s.posterior()}
    assert (post["s0"]["passes"], post["s0"]["fails"], post["s0"]["verdicts"]) == (0, 0, 0)
    assert (post["s1"]["passes"], post["s1"]["verdicts"]) == (1, 1)
    with pytest.raises(KeyError, match="nope"):
        s.update(["nope"], [True])


def test_discount_fades_older_groups():
    s = plain(4, discount=0.5)
    s.update(["s0"] * 4, [False] * 4)
    s.update(["s0"] * 2, [True] * 2)
    s.update(["s0"] * 2, [True, False])
    row = next(r for r in s.posterior() if r["id"] == "s0")
    assert (row["fails"], row["passes"], row["verdicts"]) == (4 * 0.25 + 1, 2 * 0.5 + 1, 8)


def test_domain_quotas_track_the_weights_every_step():
    n = 60
    domains = ["chart"] * 20 + ["color"] * 20 + ["ocr"] * 20
    cfg = SamplerConfig(kind="online", domain_weights={"chart": 2, "color": 1, "ocr": 1})
    s = OnlineDifficultySampler([f"s{i}" for i in range(n)], [2.0] * n, [2.0] * n, cfg=cfg, seed=0, domains=domains)
    counts = {"chart": 0, "color": 0, "ocr": 0}
    for step in range(1, 11):
        for sid in s.next_batch(6):
            counts[domains[int(sid[1:])]] += 1
        assert abs(counts["chart"] - 3 * step) <= 1 and abs(counts["color"] - 1.5 * step) <= 1, counts
    with pytest.raises(ConfigError, match="no sample has"):
        OnlineDifficultySampler(["a"], [1.0], [1.0], cfg=SamplerConfig(kind="online", domain_weights={"x": 1}), seed=0, domains=["y"])


def test_informative_probability():
    assert informative_probability(0.5, 2) == pytest.approx(0.5)
    assert informative_probability(0.0, 8) == 0 and informative_probability(1.0, 8) == 0


# ----- prior from the store, write-back, the next run starts from it -----

def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buf, format="PNG")
    return buf.getvalue()


STRATA = {"a": "easy", "b": "mid", "c": "hard", "d": "unsolved", "e": None}


@pytest.fixture
def store(tmp_path):
    samples = [Sample(sid, [ImageRef(_png())], [Message("user", "<image>Colour?")], "red", "color", "color", {}, "perception",
                      "synth", "train", {}) for sid in STRATA]
    write_shards(samples, tmp_path / "shards")
    rows = [{"id": sid, "lambda_star": None, "bucket": s if s in ("easy", "mid", "hard") else None, "unsolved": s == "unsolved",
             "generations": 10, "error": None, "error_detail": None, "model_id": "tiny", "config_hash": "h", "seed": 0,
             "gradus_version": "0.1.0"} for sid, s in STRATA.items() if s]
    (tmp_path / "pism").mkdir()
    pd.DataFrame(rows).to_parquet(tmp_path / "pism" / "scores.parquet", index=False)
    build_store(tmp_path / "store", {"pism": ScoreSource(str(tmp_path / "pism"))}, samples=str(tmp_path / "shards"))
    return tmp_path / "store"


def test_prior_reads_the_store_and_maps_strata_to_pass_rates(store):
    cfg = SamplerConfig(kind="online", store=str(store), prior=PriorConfig(scorers=["pism"], strength=4.0))
    sampler, report = build_sampler(cfg, [{"id": sid} for sid in STRATA], seed=0)
    mean = dict(zip(sampler.ids, sampler.predicted()))
    cal = PriorConfig().calibration
    assert mean["a"] == pytest.approx(cal["pism:easy"]) and mean["d"] == pytest.approx(cal["pism:unsolved"])
    assert mean["e"] == pytest.approx(cfg.prior.default)  # unscored: the stated default
    assert report["scored"] == 4 and report["calibration"]["pism:mid"]["fitted_on"] == 0
    with pytest.raises(ConfigError, match="no namespace"):
        build_sampler(SamplerConfig(kind="online", store=str(store), prior=PriorConfig(scorers=["cmab"])), [{"id": "a"}], 0)


def test_posterior_written_back_is_where_the_next_run_starts(store, tmp_path):
    cfg = SamplerConfig(kind="online", store=str(store), write_back="online", prior=PriorConfig(scorers=["pism"]))
    first, _ = build_sampler(cfg, [{"id": sid} for sid in STRATA], seed=0)
    first.update(["a"] * 8 + ["b"] * 8, [True] * 2 + [False] * 6 + [True] * 8)
    post = write_posterior(first, tmp_path / "posterior.parquet", {"model_id": "tiny", "config_hash": "run1", "seed": 0})
    assert write_back(str(store), "online", post)["status"] == "added"
    got = {r["id"]: r for r in read_store(store, columns=["id", "pass_rate@online.pass_rate", "pass_rate@online.n"]).to_pylist()}
    assert (got["a"]["pass_rate@online.pass_rate"], got["a"]["pass_rate@online.n"]) == (0.25, 8)
    assert got["c"]["pass_rate@online.n"] is None  # no verdict: not written
    # the next run reads that namespace as its evidence: same posterior; the fitted calibration moves
    cfg2 = SamplerConfig(kind="online", store=str(store), prior=PriorConfig(scorers=["pism"], pass_rate="pass_rate@online"))
    second, report = build_sampler(cfg2, [{"id": sid} for sid in STRATA], seed=0)
    before = {r["id"]: (r["passes"], r["fails"]) for r in first.posterior()}
    after = {r["id"]: (r["passes"], r["fails"]) for r in second.posterior()}
    assert after == before
    assert report["calibration"]["pism:easy"]["fitted_on"] == 8
    assert report["calibration"]["pism:easy"]["rate"] < PriorConfig().calibration["pism:easy"]
    # a second write-back of the same tag replaces the first (its verdicts are inside the new posterior)
    second.update(["b"] * 4, [False] * 4)
    post2 = write_posterior(second, tmp_path / "posterior2.parquet", {"model_id": "tiny", "config_hash": "run2", "seed": 0})
    assert write_back(str(store), "online", post2)["status"] == "replaced"
    assert pq.read_table(post2).num_rows == 2
