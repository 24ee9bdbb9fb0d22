"""MoDoMoDo mixtures: strategies on hand-checkable sizes, curriculum order, and `run_mix` end to end."""
import json
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine import __version__
from engine.config import ConfigError, from_dict
from engine.data.sample import Message, Sample
from engine.data.shards import read_table, write_shards
from pipelines.shaping.mix import MIX_JSON, MixJobConfig, run_mix
from engine.shaping.mixture import MixtureError, curriculum_order, plan_mixture


def picks(plan):
    return [(plan.domains[d], r) for d, r in zip(plan.domain_index.tolist(), plan.row_index.tolist())]


# ----- strategies -----

@pytest.mark.parametrize("seed", range(8))
def test_under_stops_right_after_the_first_domain_runs_out(seed):
    sizes = {"a": 3, "b": 4, "c": 5}
    plan = plan_mixture(sizes, {"a": 1, "b": 1, "c": 1}, "interleave_under", seed=seed)
    seq = picks(plan)
    used = Counter(d for d, _ in seq)
    finished = [d for d in sizes if used[d] == sizes[d]]
    assert len(finished) == 1 and seq[-1][0] == finished[0]  # its last row is the last one taken
    assert all(used[d] < sizes[d] for d in sizes if d != finished[0])
    assert len(set(seq)) == len(seq)  # nothing repeated
    assert plan.stop_reason == "first_exhausted" and plan.counts == {d: used[d] for d in sizes}


def test_under_with_a_one_row_domain_ends_when_that_row_is_drawn():
    plan = plan_mixture({"tiny": 1, "big": 1000}, {"tiny": 0.5, "big": 0.5}, "interleave_under", seed=3)
    seq = picks(plan)
    assert seq[-1] == ("tiny", 0) and [d for d, _ in seq].count("tiny") == 1


@pytest.mark.parametrize("seed", range(6))
def test_over_restarts_exhausted_domains_until_every_domain_is_seen(seed):
    sizes = {"a": 2, "b": 3, "c": 6}
    plan = plan_mixture(sizes, {"a": 0.6, "b": 0.3, "c": 0.1}, "interleave_over", seed=seed)
    seq = picks(plan)
    assert plan.stop_reason == "all_seen" and all(plan.passes[d] >= 1 for d in sizes)
    # the last row taken completed the last domain's first pass
    last = seq[-1][0]
    assert plan.passes[last] == 1 and Counter(d for d, _ in seq[:-1])[last] == sizes[last] - 1
    for d, n in sizes.items():  # each complete pass is a permutation of the domain's rows
        rows = [r for dd, r in seq if dd == d]
        for start in range(0, len(rows) - n + 1, n):
            assert sorted(rows[start:start + n]) == list(range(n))
    assert plan.unique_counts == sizes


def test_over_reshuffles_on_restart_and_fills_a_budget():
    plan = plan_mixture({"a": 4, "b": 50}, {"a": 0.5, "b": 0.5}, "interleave_over", budget=60, seed=0)
    assert len(plan) == 60 and plan.stop_reason == "budget" and plan.shortfall == 0
    a_rows = [r for d, r in picks(plan) if d == "a"]
    passes = [tuple(a_rows[i:i + 4]) for i in range(0, len(a_rows) - 3, 4)]
    assert plan.passes["a"] == len(passes) >= 3 and len(set(passes)) > 1  # not the same order every pass
    plain = plan_mixture({"a": 4, "b": 50}, {"a": 0.5, "b": 0.5}, "interleave_over", budget=60, seed=0, shuffle=False)
    a_plain = [r for d, r in picks(plain) if d == "a"]
    assert a_plain[:8] == [0, 1, 2, 3, 0, 1, 2, 3]  # storage order, restarted from the top


@pytest.mark.parametrize("seed", range(6))
def test_once_uses_every_row_exactly_once(seed):
    sizes = {"a": 3, "b": 4, "c": 2}
    plan = plan_mixture(sizes, {"a": 0.7, "b": 0.2, "c": 0.1}, "interleave_once", seed=seed)
    seq = picks(plan)
    assert sorted(seq) == sorted((d, r) for d, n in sizes.items() for r in range(n))
    assert plan.counts == sizes and plan.stop_reason == "all_used"
    short = plan_mixture(sizes, {"a": 0.7, "b": 0.2, "c": 0.1}, "interleave_once", seed=seed, budget=5)
    assert len(short) == 5 and len(set(picks(short))) == 5 and short.stop_reason == "budget"
    over = plan_mixture(sizes, {"a": 0.7, "b": 0.2, "c": 0.1}, "interleave_once", seed=seed, budget=20)
    assert len(over) == 9 and over.shortfall == 11


def test_concat_keeps_domain_order_and_truncates_at_the_budget():
    plan = plan_mixture({"a": 2, "b": 3, "c": 2}, {"a": 1, "b": 0, "c": 3}, "concat", shuffle=False)
    assert picks(plan) == [("a", 0), ("a", 1), ("c", 0), ("c", 1)] and plan.dropped == ["b"]
    cut = plan_mixture({"a": 2, "b": 3}, {"a": 1, "b": 1}, "concat", shuffle=False, budget=3)
    assert picks(cut) == [("a", 0), ("a", 1), ("b", 0)] and cut.passes == {"a": 1, "b": 0}


@pytest.mark.parametrize("strategy", ["concat", "interleave_under", "interleave_over", "interleave_once"])
def test_zero_weight_domains_are_dropped_before_mixing(strategy):
    plan = plan_mixture({"a": 3, "gone": 0, "b": 4}, {"a": 1, "gone": 0, "b": 1}, strategy, seed=1)
    assert plan.domains == ["a", "b"] and plan.dropped == ["gone"] and "gone" not in plan.counts


def test_realized_shares_follow_the_weights_and_seeds_are_deterministic():
    args = ({"a": 20000, "b": 20000}, {"a": 0.8, "b": 0.2}, "interleave_under")
    plan = plan_mixture(*args, budget=10000, seed=7)
    assert plan.counts["a"] / len(plan) == pytest.approx(0.8, abs=0.02)
    again = plan_mixture(*args, budget=10000, seed=7)
    other = plan_mixture(*args, budget=10000, seed=8)
    assert np.array_equal(plan.row_index, again.row_index) and np.array_equal(plan.domain_index, again.domain_index)
    assert not np.array_equal(plan.row_index, other.row_index)


def test_a_domains_row_order_does_not_depend_on_the_other_domains():
    one = plan_mixture({"a": 6, "b": 6}, {"a": 1, "b": 1}, "interleave_once", seed=2)
    two = plan_mixture({"a": 6, "c": 9}, {"a": 1, "c": 3}, "interleave_once", seed=2)
    assert [r for d, r in picks(one) if d == "a"] == [r for d, r in picks(two) if d == "a"]


def test_plan_errors_are_clear():
    with pytest.raises(MixtureError, match="unknown strategy"):
        plan_mixture({"a": 1}, {"a": 1}, "interleave_sideways")
    with pytest.raises(MixtureError, match=">= 0"):
        plan_mixture({"a": 1, "b": 1}, {"a": 1, "b": -0.1}, "concat")
    with pytest.raises(MixtureError, match="every weight is zero"):
        plan_mixture({"a": 1}, {"a": 0}, "concat")
    with pytest.raises(MixtureError, match="no rows"):
        plan_mixture({"a": 0, "b": 2}, {"a": 1, "b": 1}, "interleave_under")
    with pytest.raises(MixtureError, match="unknown domain"):
        plan_mixture({"a": 2}, {"a": 1, "z": 1}, "interleave_under")
    with pytest.raises(MixtureError, match="set a step or sample budget"):
        plan_mixture({"a": 1000, "b": 1000}, {"a": 0.999, "b": 0.001}, "interleave_over", max_rows=100_000)


# ----- curriculum -----

def test_curriculum_sorts_easy_to_hard_with_ties_in_incoming_order():
    values = [2, 1, 2, 1, None, 3]
    assert curriculum_order(values) == [1, 3, 0, 2, 5, 4]
    assert curriculum_order(values, harder="lower") == [5, 0, 2, 1, 3, 4]
    assert curriculum_order(values, missing="first")[0] == 4
    assert curriculum_order(["hard", "easy", "mid", "easy"], levels=["easy", "mid", "hard"]) == [1, 3, 2, 0]
    assert curriculum_order([0.5, float("nan"), 0.1], missing="first") == [1, 2, 0]


def test_curriculum_errors_are_clear():
    with pytest.raises(MixtureError, match="no difficulty value"):
        curriculum_order([1, None], missing="error")
    with pytest.raises(MixtureError, match="not one of levels"):
        curriculum_order(["easy", "brutal"], levels=["easy", "hard"])
    with pytest.raises(MixtureError, match="not numeric"):
        curriculum_order(["easy", "hard"])


# ----- run_mix on tiny canonical shards -----

def _sample(i, domain, level, split="train"):
    return Sample(id=f"{domain}-{i}", images=[], messages=[Message("user", f"q{i}?")], answer=str(i), task=f"task_{domain}",
                  verifier="exact", domain=domain, split=split, meta={"level": level})


@pytest.fixture
def corpus(tmp_path):
    rows = [_sample(i, "a", level=i % 3) for i in range(3)] + [_sample(i, "b", level=(i + 1) % 3) for i in range(5)]
    rows += [_sample(i, "c", level=0) for i in range(2)] + [_sample(9, "a", level=0, split="val")]
    write_shards(rows, tmp_path / "in", rows_per_shard=4)
    return tmp_path


def _cfg(corpus, **over):
    data = {"input": str(corpus / "in"), "output": str(corpus / "out"), "weights": {"a": 1, "b": 1, "c": 0},
            "strategy": "interleave_once"} | over
    return from_dict(MixJobConfig, data)


def test_run_mix_writes_canonical_shards_and_the_realized_counts(corpus):
    result = run_mix(_cfg(corpus))
    table = read_table(corpus / "out")  # canonical readers read the mixture
    ids = table["id"].to_pylist()
    assert sorted(ids) == sorted([f"a-{i}" for i in range(3)] + [f"b-{i}" for i in range(5)])  # c dropped, val row left out
    record = json.loads((corpus / "out" / MIX_JSON).read_text())
    assert record["realized_counts"] == {"a": 3, "b": 5} == dict(Counter(table["domain"].to_pylist()))
    assert record["weights"] == {"a": 0.5, "b": 0.5} and record["dropped_zero_weight"] == ["c"]
    assert record["gradus_version"] == __version__ and len(record["config_hash"]) == 16 and record["seed"] == 0
    assert result["rows"] == 8 and "config" not in result and record["config"]["strategy"] == "interleave_once"
    assert run_mix(_cfg(corpus, overwrite=True))["config_hash"] == result["config_hash"]
    assert run_mix(_cfg(corpus, overwrite=True, output=str(corpus / "elsewhere")))["config_hash"] == result["config_hash"]
    assert run_mix(_cfg(corpus, overwrite=True, seed=1))["config_hash"] != result["config_hash"]


def test_run_mix_step_budget(corpus):
    result = run_mix(_cfg(corpus, strategy="interleave_over", budget={"steps": 5, "batch_size": 4}))
    assert result["rows"] == 20 and result["steps"] == 5 and result["stop_reason"] == "budget"
    assert sum(result["realized_counts"].values()) == 20 and read_table(corpus / "out").num_rows == 20


def test_run_mix_curriculum_keeps_the_mixture_order_within_a_level(corpus):
    plain = read_table(run_mix(_cfg(corpus, output=str(corpus / "plain")))["shards"][0])["id"].to_pylist()
    result = run_mix(_cfg(corpus, curriculum={"column": "meta.level"}))
    table = read_table(corpus / "out")
    levels = [json.loads(m)["level"] for m in table["meta"].to_pylist()]
    assert levels == sorted(levels) and result["verl"] == {"data.shuffle": False}
    ids = table["id"].to_pylist()
    for level in set(levels):
        at_level = [i for i, lv in zip(ids, levels) if lv == level]
        assert at_level == [i for i in plain if i in at_level]  # stable: ties keep the mixed order


def test_run_mix_curriculum_from_a_scores_file(corpus):
    scores = pa.table({"id": ["a-0", "a-1", "b-0", "b-1"], "lambda_star": [0.2, 0.9, 0.5, 0.0]})
    pq.write_table(scores, corpus / "scores.parquet")
    cur = {"column": "lambda_star", "scores": str(corpus / "scores.parquet"), "harder": "lower", "missing": "first"}
    run_mix(_cfg(corpus, curriculum=cur))
    table = pq.read_table(corpus / "out")
    lam = table["lambda_star"].to_pylist()  # the joined difficulty travels with the rows
    assert lam[:4] == [None] * 4 and lam[4:] == [0.9, 0.5, 0.2, 0.0]


def test_run_mix_with_one_folder_per_domain(tmp_path):
    write_shards([_sample(i, "x", 0) for i in range(3)], tmp_path / "x")
    write_shards([_sample(i, "y", 0) for i in range(2)], tmp_path / "y")
    cfg = from_dict(MixJobConfig, {"inputs": {"first": str(tmp_path / "x"), "second": str(tmp_path / "y")},
                                   "weights": {"first": 2, "second": 1}, "strategy": "concat", "shuffle": False,
                                   "output": str(tmp_path / "out")})
    result = run_mix(cfg)
    assert result["realized_counts"] == {"first": 3, "second": 2}
    assert read_table(tmp_path / "out")["id"].to_pylist() == ["x-0", "x-1", "x-2", "y-0", "y-1"]


def test_run_mix_errors_are_clear(corpus):
    with pytest.raises(MixtureError, match=r"\['c'\] .* have no weight"):
        run_mix(_cfg(corpus, weights={"a": 1, "b": 1}))
    with pytest.raises(MixtureError, match="no train-split rows"):
        run_mix(_cfg(corpus, weights={"a": 1, "b": 1, "c": 0, "d": 1}))
    with pytest.raises(MixtureError, match="stopped"):
        run_mix(_cfg(corpus, strategy="interleave_under", budget={"samples": 50}))
    with pytest.raises(ConfigError, match="exactly one"):
        run_mix(_cfg(corpus, inputs={"a": "x"}))
    with pytest.raises(ConfigError, match="steps and batch_size go together"):
        _cfg(corpus, budget={"steps": 3})
    with pytest.raises(ConfigError, match="not a column"):
        run_mix(_cfg(corpus, curriculum={"column": "difficulty"}))
    run_mix(_cfg(corpus))
    with pytest.raises(ConfigError, match="overwrite=true"):
        run_mix(_cfg(corpus))
    (corpus / "out" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a mixture"):
        run_mix(_cfg(corpus, overwrite=True))
