"""Mixture search: seed designs, heuristics, the Scheffé surrogate and its maximum, run files and their errors."""
import json

import numpy as np
import pytest

from engine.config import ConfigError, from_dict
from pipelines.shaping.mix import NEXT_RUNS_CSV, NEXT_RUNS_JSON, PROPOSAL_JSON, MixSearchConfig, read_runs, run_mixture_search
from engine.shaping.mixture_search import (
    NextRunsConfig,
    alpha_blends,
    candidate_mixtures,
    leave_one_out_norm,
    propose_next_runs,
    seed_designs,
    simplex_lattice,
)
from engine.shaping.mixture_surrogate import (
    RunRecord,
    Runs,
    RunsError,
    ScheffeModel,
    SurrogateConfig,
    argmax_jacobian,
    fit_scheffe,
    fit_surrogate,
    maximise_on_simplex,
    pair_indices,
    project_to_simplex,
    propose_mixture,
    scheffe_features,
    validate_runs,
)

FAST = SurrogateConfig(bootstrap=0)


def planted(n, seed, *, noise=0.0, n_random=20):
    """Runs from a concave quadratic with its maximum at an interior w* (a Scheffé quadratic on the simplex)."""
    rng = np.random.default_rng(seed)
    w_star = rng.dirichlet(np.full(n, 4.0))
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    A = q @ np.diag(rng.uniform(0.5, 1.5, n)) @ q.T

    def score(W):
        D = np.atleast_2d(W) - w_star
        return 0.5 - np.einsum("ki,ij,kj->k", D, A, D)

    domains = [f"d{i}" for i in range(n)]
    W = np.vstack([np.array(list(seed_designs(domains).values())), rng.dirichlet(np.ones(n), size=n_random)])
    y = score(W) + rng.normal(scale=noise, size=len(W))
    return Runs(domains, W, y, [str(i) for i in range(len(W))]), w_star, score


def test_seed_designs():
    d = seed_designs(["a", "b", "c"])
    assert list(d) == ["only_a", "only_b", "only_c", "without_a", "without_b", "without_c", "uniform"]
    assert d["without_b"].tolist() == [0.5, 0.0, 0.5] and d["uniform"] == pytest.approx([1 / 3] * 3)
    assert list(seed_designs(["a", "b"])) == ["only_a", "only_b", "uniform"]  # "without a" would repeat "only b"


def test_scheffe_terms_have_no_intercept():
    assert scheffe_features(np.array([0.5, 0.3, 0.2]))[0] == pytest.approx([0.5, 0.3, 0.2, 0.15, 0.1, 0.06])


def test_fit_recovers_exact_coefficients_without_noise():
    rng = np.random.default_rng(0)
    b = np.array([0.3, 0.5, 0.4])
    inter = np.zeros((3, 3))
    inter[0, 1], inter[0, 2], inter[1, 2] = 0.8, -0.6, 0.2
    truth = ScheffeModel(["a", "b", "c"], b, inter, 0, 0, 0, 0)
    W = rng.dirichlet(np.ones(3), size=12)
    model = fit_scheffe(Runs(["a", "b", "c"], W, truth.predict(W), [""] * 12), FAST)
    assert model.linear == pytest.approx(b, abs=1e-3) and model.interactions == pytest.approx(inter, abs=1e-2)
    assert model.loo_rmse < 1e-3 and model.ridge == FAST.ridge_min


def test_ridge_is_chosen_by_leave_one_out_and_grows_with_noise():
    quiet, _, _ = planted(4, 1, noise=0.0)
    loud, _, _ = planted(4, 1, noise=0.2)
    assert fit_scheffe(quiet, FAST).ridge < fit_scheffe(loud, FAST).ridge


def _model(b, pairs):
    n = len(b)
    inter = np.zeros((n, n))
    for (i, j), v in pairs.items():
        inter[i, j] = v
    return ScheffeModel([str(i) for i in range(n)], np.array(b, float), inter, 0, 0, 0, 0)


def test_maximum_on_hand_checkable_surfaces():
    assert maximise_on_simplex(_model([0.2, 0.7, 0.1], {}), FAST) == pytest.approx([0, 1, 0])  # linear: best vertex
    assert maximise_on_simplex(_model([0, 0], {(0, 1): 4.0}), FAST) == pytest.approx([0.5, 0.5])  # 4 w1 w2
    # two synergistic domains beat the strongest single one: max of w0 + 0.9 w1 + 2 w0 w1 on the (0, 1) edge
    w = maximise_on_simplex(_model([1.0, 0.9, 0.0], {(0, 1): 2.0, (0, 2): -1.0}), FAST)
    assert w == pytest.approx([0.525, 0.475, 0.0], abs=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_exact_and_ascent_maxima_agree_and_beat_every_sampled_point(seed):
    rng = np.random.default_rng(seed)
    n = 4
    model = _model(rng.normal(size=n), {(i, j): rng.normal(scale=2) for i in range(n) for j in range(i + 1, n)})
    exact = maximise_on_simplex(model, FAST, method="exact")
    ascent = maximise_on_simplex(model, FAST, method="ascent")
    cloud = np.vstack([rng.dirichlet(np.ones(n) * a, size=3000) for a in (0.2, 1.0, 5.0)])
    best = model.predict(exact)[0]
    assert best >= model.predict(cloud).max() - 1e-12 and model.predict(ascent)[0] == pytest.approx(best, abs=1e-9)
    assert exact.sum() == pytest.approx(1) and exact.min() >= 0


def test_projection_onto_the_simplex():
    P = project_to_simplex(np.array([[0.5, 0.5, 0.5], [2.0, 0.0, 0.0], [0.2, 0.3, 0.5], [-1.0, 3.0, 0.5]]))
    assert P == pytest.approx(np.array([[1 / 3] * 3, [1, 0, 0], [0.2, 0.3, 0.5], [0, 1, 0]]))


@pytest.mark.parametrize("seed", range(4))
def test_surrogate_recovers_a_planted_optimum(seed):
    runs, w_star, score = planted(5, seed, noise=0.001)
    out = propose_mixture(runs, SurrogateConfig(bootstrap=20))
    w = np.array(list(out["weights"].values()))
    assert np.abs(w - w_star).sum() < 0.05
    assert out["predicted_score"] == pytest.approx(0.5, abs=0.003) and score(w)[0] == pytest.approx(0.5, abs=1e-3)
    unc = out["uncertainty"]
    assert 0 < unc["nested_cv_rmse"] < 0.01 and unc["resamples"] == 20 and unc["weights_l1_median"] < 0.1


def _noise_only_runs(seed, n=3, m=16, sd=0.01):
    """Scores that do not depend on the mixture: any ridge the grid offers can only fit noise, so the
    least LOO error over the grid is a selection-biased (optimistic) estimate of the prediction error."""
    rng = np.random.default_rng([seed, 22])
    domains = [f"d{i}" for i in range(n)]
    W = np.vstack([np.array(list(seed_designs(domains).values())), rng.dirichlet(np.ones(n), size=m - 2 * n - 1)])
    return Runs(domains, W, 0.5 + rng.normal(scale=sd, size=len(W)), [str(i) for i in range(len(W))])


def test_reported_error_is_nested_cv_of_the_whole_procedure():
    """Outer leave-one-out around the full fit (ridge chosen by inner LOO on the other runs), checked by brute force."""
    runs, _, _ = planted(3, 2, noise=0.01, n_random=10)
    model = fit_scheffe(runs, FAST)
    errors = []
    for i in range(len(runs.scores)):
        keep = np.arange(len(runs.scores)) != i
        inner = fit_scheffe(Runs(runs.domains, runs.weights[keep], runs.scores[keep], [""] * int(keep.sum())), FAST)
        errors.append(runs.scores[i] - inner.predict(runs.weights[i])[0])
    assert model.nested_cv_rmse == pytest.approx(float(np.sqrt(np.mean(np.square(errors)))), rel=1e-9)
    out = propose_mixture(runs, FAST)
    assert out["uncertainty"]["nested_cv_rmse"] == pytest.approx(model.nested_cv_rmse, abs=1e-6)
    assert out["model"]["loo_rmse_at_ridge"] == pytest.approx(min(model.ridge_path.values()), abs=1e-6)


def test_nested_cv_error_is_not_below_the_optimistic_minimum_loo():
    nested, least = [], []
    for seed in range(10):
        out = propose_mixture(_noise_only_runs(seed), FAST)
        nested.append(out["uncertainty"]["nested_cv_rmse"])
        least.append(min(v for v in out["model"]["ridge_path"].values() if v is not None))
    assert np.mean(nested) > 1.02 * np.mean(least)  # today's report was the minimum itself
    assert sum(a >= b for a, b in zip(nested, least)) >= 8


def test_bootstrap_reselects_the_ridge_in_every_resample():
    runs = _noise_only_runs(0, n=4, m=24, sd=0.02)  # a flat LOO curve: each resample's noise picks its own ridge
    fit = fit_surrogate(runs, SurrogateConfig(bootstrap=40))
    grid = np.geomspace(1e-6, 100.0, 33)
    ridges = [b.ridge for b in fit.boots]
    assert len(set(ridges)) > 3 and all(np.isclose(grid, r).any() for r in ridges)
    unc = propose_mixture(runs, SurrogateConfig(bootstrap=40), fit)["uncertainty"]
    assert unc["ridge_p05_p95"][0] < unc["ridge_p05_p95"][1]


def _design_runs(scores):
    domains = ["a", "b", "c"]
    designs = seed_designs(domains)
    records = [RunRecord(dict(zip(domains, designs[k].tolist())), s, k) for k, s in scores.items()]
    return validate_runs(records, domains)


def test_heuristics_on_hand_numbers():
    runs = _design_runs({"only_a": 0.6, "only_b": 0.2, "only_c": 0.2, "uniform": 0.5,
                         "without_a": 0.3, "without_b": 0.5, "without_c": 0.45})
    blends = alpha_blends(runs, [0.0, 0.5, 1.0])
    assert blends["alpha_1"] == pytest.approx([0.6, 0.2, 0.2]) and blends["alpha_0"] == pytest.approx([1 / 3] * 3)
    assert blends["alpha_0.5"] == pytest.approx([0.3 + 1 / 6, 0.1 + 1 / 6, 0.1 + 1 / 6])
    assert leave_one_out_norm(runs) == pytest.approx([0.8, 0.0, 0.2])  # removal costs 0.2, 0 (clipped), 0.05


def test_heuristics_say_what_they_miss():
    runs = _design_runs({"only_a": 0.6, "only_b": 0.2, "uniform": 0.5, "without_a": 0.3, "without_c": 0.4})
    assert "only_c" not in seed_designs(["a"]) and "['c']" in alpha_blends(runs, [0.5])
    assert "without_b" in leave_one_out_norm(runs)


def test_validation_errors_are_clear():
    good = {"a": 0.5, "b": 0.5}
    with pytest.raises(RunsError, match="sum to 0.9"):
        validate_runs([RunRecord({"a": 0.5, "b": 0.4}, 0.3, where="runs.csv:2")])
    with pytest.raises(RunsError, match=r"runs.csv:3: unknown domain\(s\) \['z'\]"):
        validate_runs([RunRecord(good, 0.3), RunRecord({"a": 0.5, "z": 0.5}, 0.3, where="runs.csv:3")], ["a", "b"])
    with pytest.raises(RunsError, match=">= 0"):
        validate_runs([RunRecord({"a": 1.5, "b": -0.5}, 0.3)])
    with pytest.raises(RunsError, match="finite"):
        validate_runs([RunRecord(good, float("nan"))])
    with pytest.raises(RunsError, match=r"\['c'\] have weight 0 in every run"):
        validate_runs([RunRecord(good, 0.3)], ["a", "b", "c"])
    few = validate_runs([RunRecord({"a": w, "b": 1 - w}, w) for w in (0.0, 1.0)])
    with pytest.raises(RunsError, match="3 terms .* at least 3 runs"):
        fit_scheffe(few, FAST)
    repeated = validate_runs([RunRecord({"a": w, "b": 1 - w}, w) for w in (0.0, 1.0, 0.0, 1.0)])
    with pytest.raises(RunsError, match="span only 2 of the 3"):
        fit_scheffe(repeated, FAST)


# ----- run files and the job -----

def test_csv_runs(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("name,coco,lisa,score\nall,0.5,0.5,0.41\ncoco,1,0,0.35\n")
    records = read_runs(from_dict(MixSearchConfig, {"runs": str(path)}))
    assert [(r.name, r.weights, r.score) for r in records] == [("all", {"coco": 0.5, "lisa": 0.5}, 0.41), ("coco", {"coco": 1.0, "lisa": 0.0}, 0.35)]
    path.write_text("coco,lisa,acc\n0.5,0.5,0.41\n")
    with pytest.raises(RunsError, match="no score column 'score'"):
        read_runs(from_dict(MixSearchConfig, {"runs": str(path)}))
    path.write_text("coco,lisa,score\n0.5,half,0.41\n")
    with pytest.raises(RunsError, match=r"runs.csv:2 column 'lisa': 'half' is not a number"):
        read_runs(from_dict(MixSearchConfig, {"runs": str(path)}))


def test_gradus_json_runs_with_eval_summaries(tmp_path):
    runs = [{"name": "r0", "weights": {"a": 1.0}, "eval": {"overall_acc": 0.4, "per_family": {"x": 0.2, "y": 0.6}}},
            {"name": "r1", "weights": {"a": 0.5, "b": 0.5}, "eval": {"overall_acc": 0.5, "per_family": {"x": 0.5, "y": 0.7}}}]
    (tmp_path / "runs.json").write_text(json.dumps({"runs": runs}))
    (tmp_path / "runs.jsonl").write_text("\n".join(json.dumps(r) for r in runs) + "\n")
    for name in ("runs.json", "runs.jsonl"):
        cfg = from_dict(MixSearchConfig, {"runs": str(tmp_path / name), "score_key": "eval.overall_acc"})
        assert [(r.weights, r.score) for r in read_runs(cfg)] == [({"a": 1.0}, 0.4), ({"a": 0.5, "b": 0.5}, 0.5)]
    mean = from_dict(MixSearchConfig, {"runs": str(tmp_path / "runs.json"), "score_key": "eval.per_family", "score_reduce": "mean"})
    assert [r.score for r in read_runs(mean)] == pytest.approx([0.4, 0.6])
    with pytest.raises(RunsError, match="holds a dict"):
        read_runs(from_dict(MixSearchConfig, {"runs": str(tmp_path / "runs.json"), "score_key": "eval.per_family"}))
    with pytest.raises(RunsError, match=r"runs.jsonl:1: no 'eval.accuracy' in the record"):
        read_runs(from_dict(MixSearchConfig, {"runs": str(tmp_path / "runs.jsonl"), "score_key": "eval.accuracy"}))


def test_run_mixture_search_writes_a_proposal(tmp_path):
    runs, w_star, _ = planted(3, 0, noise=0.001)
    records = [{"name": n, "weights": dict(zip(runs.domains, w.tolist())), "score": float(s)}
               for n, w, s in zip(runs.names, runs.weights, runs.scores)]
    path = tmp_path / "runs.json"
    path.write_text(json.dumps(records[3:]))  # without the single-domain seed runs
    cfg = from_dict(MixSearchConfig, {"runs": str(path), "output": str(tmp_path / "out"), "surrogate": {"bootstrap": 10}})
    result = run_mixture_search(cfg)
    written = json.loads((tmp_path / "out" / PROPOSAL_JSON).read_text())
    assert written["surrogate"]["weights"] == result["surrogate"]["weights"] and written["config"]["runs"] == str(path)
    assert sorted(result["missing_seed_designs"]) == ["only_d0", "only_d1", "only_d2"]
    assert "skipped" in result["heuristics"]["alpha"] and "weights" in result["heuristics"]["norm"]
    w = np.array([result["surrogate"]["weights"][d] for d in runs.domains])
    assert np.abs(w - w_star).sum() < 0.05 and result["runs"] == len(records) - 3


def test_exactly_as_many_runs_as_terms_gives_a_json_safe_proposal():
    runs = validate_runs([RunRecord({"a": w, "b": 1 - w}, 0.3 + w - w * w) for w in (0.0, 0.5, 1.0)])
    out = propose_mixture(runs, SurrogateConfig(bootstrap=5))
    json.loads(json.dumps(out, allow_nan=False))
    assert out["weights"]["a"] == pytest.approx(0.5, abs=0.05)


# ----- the next runs (sequential design) -----

def _as_matrix(next_runs, domains):
    return np.array([[r["weights"][d] for d in domains] for r in next_runs])


def _on_simplex(W):
    return bool(np.all(W >= 0) and np.allclose(W.sum(axis=1), 1, atol=1e-5))


def test_simplex_lattice_and_candidates():
    L = simplex_lattice(3, 2)
    assert len(L) == 6 and _on_simplex(L) and {tuple(r) for r in L} >= {(1, 0, 0), (0.5, 0.5, 0)}
    C = candidate_mixtures(["a", "b", "c", "d", "e"], 500, seed=0)
    assert _on_simplex(C) and len(C) <= 500 and len(np.unique(C, axis=0)) == len(C)
    assert np.array_equal(C, candidate_mixtures(["a", "b", "c", "d", "e"], 500, seed=0))


def test_argmax_jacobian_matches_finite_differences():
    rng = np.random.default_rng(3)
    runs, _, _ = planted(4, 3)
    model = fit_scheffe(runs, FAST)
    w = maximise_on_simplex(model, FAST)
    assert w.min() > 0.01  # interior: the face is the whole simplex
    J = argmax_jacobian(model, w)
    theta = np.concatenate([model.linear, [model.interactions[i, j] for i, j in pair_indices(4)]])
    for _ in range(3):
        d = rng.normal(size=len(theta)) * 1e-6
        bumped = theta + d
        inter = np.zeros((4, 4))
        for k, (i, j) in enumerate(pair_indices(4)):
            inter[i, j] = bumped[4 + k]
        moved = maximise_on_simplex(ScheffeModel(model.domains, bumped[:4], inter, 0, 0, 0, 0), FAST)
        assert moved - w == pytest.approx(J @ d, abs=1e-10)
    assert not argmax_jacobian(model, np.array([0, 1.0, 0, 0])).any()  # a vertex does not move


def test_next_runs_lie_on_the_simplex_and_are_deterministic_by_seed():
    runs, _, _ = planted(4, 0, noise=0.005)
    for criterion in ("argmax", "d_optimal", "bootstrap_argmax"):
        nxt = NextRunsConfig(count=6, criterion=criterion)
        one = propose_next_runs(runs, SurrogateConfig(bootstrap=20), nxt)
        assert len(one["runs"]) == 6 and _on_simplex(_as_matrix(one["runs"], runs.domains))
        assert one == propose_next_runs(runs, SurrogateConfig(bootstrap=20), nxt)
        assert len({r["name"] for r in one["runs"]}) == 6
    other = propose_next_runs(runs, SurrogateConfig(bootstrap=20, seed=5), NextRunsConfig(count=6, criterion="bootstrap_argmax"))
    assert other != propose_next_runs(runs, SurrogateConfig(bootstrap=20), NextRunsConfig(count=6, criterion="bootstrap_argmax"))
    with pytest.raises(ConfigError, match="bootstrap > 0"):
        propose_next_runs(runs, FAST, NextRunsConfig(criterion="bootstrap_argmax"))


def test_next_runs_can_start_with_the_surrogate_maximum():
    runs, _, _ = planted(4, 1, noise=0.002)
    out = propose_next_runs(runs, SurrogateConfig(bootstrap=10), NextRunsConfig(count=3, include_proposal=True))
    assert out["runs"][0]["weights"] == propose_mixture(runs, SurrogateConfig(bootstrap=10))["weights"]
    assert out["runs"][0]["why"] == "surrogate maximum" and out["argmax_rmse_after"] < out["argmax_rmse_now"]


def test_a_vertex_maximum_falls_back_to_d_optimal():
    domains = ["a", "b", "c"]
    rng = np.random.default_rng(0)
    W = np.vstack([np.array(list(seed_designs(domains).values())), rng.dirichlet(np.ones(3), size=6)])
    runs = Runs(domains, W, W @ np.array([1.0, 0.2, 0.1]), [""] * len(W))  # linear: the maximum is vertex a
    out = propose_next_runs(runs, SurrogateConfig(bootstrap=10), NextRunsConfig(count=2))
    assert out["criterion"] == "d_optimal" and "vertex" in out["reason"]


def _sequential(seed, *, noise, rounds, count=5, bootstrap=30):
    """Seed designs only (too few to fit), then rounds of proposed runs scored on the planted surface."""
    runs, w_star, score = planted(5, seed, noise=0.0, n_random=0)
    rng = np.random.default_rng([seed, 9])
    cfg, nxt = SurrogateConfig(bootstrap=bootstrap, seed=seed), NextRunsConfig(count=count, seed=seed)
    W = runs.weights
    y = score(W) + rng.normal(scale=noise, size=len(W))
    for _ in range(rounds + 1):
        new = _as_matrix(propose_next_runs(Runs(runs.domains, W, y, [""] * len(W)), cfg, nxt)["runs"], runs.domains)
        W, y = np.vstack([W, new]), np.concatenate([y, score(new) + rng.normal(scale=noise, size=len(new))])
    w = maximise_on_simplex(fit_scheffe(Runs(runs.domains, W, y, [""] * len(W)), cfg), cfg)
    return np.abs(w - w_star).sum(), len(W)


def test_cold_start_completes_the_design_and_the_loop_finds_a_noise_free_optimum():
    runs, _, _ = planted(5, 0, n_random=0)
    first = propose_next_runs(runs, FAST, NextRunsConfig(count=2))
    assert first["criterion"] == "d_optimal" and len(runs.scores) + len(first["runs"]) == 16  # 15 terms + 1
    l1, total = _sequential(0, noise=0.0, rounds=1)
    assert l1 < 1e-4 and total == 21  # exact up to the smallest ridge


def test_sequential_design_beats_random_runs_at_the_same_budget():
    seq, rand = [], []
    for seed in range(3):
        l1, total = _sequential(seed, noise=0.005, rounds=3)
        seq.append(l1)
        runs, w_star, _ = planted(5, seed, noise=0.005, n_random=total - 11)
        rand.append(np.abs(maximise_on_simplex(fit_scheffe(runs, FAST), FAST) - w_star).sum())
    assert total == 31 and np.mean(seq) < 0.7 * np.mean(rand)


def test_search_writes_next_runs_to_fill_in_and_append(tmp_path):
    """Seed runs only (9 for 10 terms: too few) -> next_runs.csv in the runs file's columns ->
    scores filled in and appended -> the surrogate is fitted on the next search."""
    runs, w_star, score = planted(4, 0, n_random=0)
    path = tmp_path / "runs.csv"

    def line(s, w, name):
        return f"{s},{w[3]},{name},{w[0]},{w[1]},{w[2]}"

    path.write_text("\n".join(["score,d3,name,d0,d1,d2"] + [line(s, w, n) for n, w, s in zip(runs.names, runs.weights, runs.scores)]) + "\n")
    cfg = from_dict(MixSearchConfig, {"runs": str(path), "output": str(tmp_path / "out"), "surrogate": {"bootstrap": 10}})
    result = run_mixture_search(cfg)
    assert "at least 10 runs" in result["surrogate"]["skipped"] and result["next_runs_design"]["criterion"] == "d_optimal"
    assert result["runs"] + len(result["next_runs"]) == 9 + cfg.next_runs.count >= 11  # 10 terms + 1
    lines = (tmp_path / "out" / NEXT_RUNS_CSV).read_text().splitlines()
    assert lines[0] == "score,d3,name,d0,d1,d2" and all(row.startswith(",") for row in lines[1:])  # score left empty
    records = json.loads((tmp_path / "out" / NEXT_RUNS_JSON).read_text())
    assert [r["score"] for r in records] == [None] * len(records) and records[0]["weights"] == result["next_runs"][0]["weights"]
    filled = []
    for rec in result["next_runs"]:
        w = np.array([rec["weights"][d] for d in runs.domains])
        filled.append(line(score(w)[0], w, rec["name"]))
    path.write_text(path.read_text() + "\n".join(filled) + "\n")
    again = run_mixture_search(cfg)
    assert "weights" in again["surrogate"] and len(again["next_runs"]) == cfg.next_runs.count
    w = np.array([again["surrogate"]["weights"][d] for d in runs.domains])
    assert np.abs(w - w_star).sum() < 1e-3 and len(again["written"]) == 3


def test_no_next_runs_keeps_the_too_few_runs_error(tmp_path):
    runs, _, _ = planted(4, 0, n_random=0)
    path = tmp_path / "runs.json"
    path.write_text(json.dumps([{"weights": dict(zip(runs.domains, w.tolist())), "score": float(s)} for w, s in zip(runs.weights, runs.scores)]))
    with pytest.raises(RunsError, match="at least 10 runs"):
        run_mixture_search(from_dict(MixSearchConfig, {"runs": str(path), "next_runs": {"count": 0}}))
    nested = from_dict(MixSearchConfig, {"runs": str(path), "output": str(tmp_path / "o"), "score_key": "eval.acc"})
    path.write_text(json.dumps([{"weights": dict(zip(runs.domains, w.tolist())), "eval": {"acc": float(s)}} for w, s in zip(runs.weights, runs.scores)]))
    run_mixture_search(nested)
    assert json.loads((tmp_path / "o" / NEXT_RUNS_JSON).read_text())[0]["eval"] == {"acc": None}
