"""Mixture search: seed designs, heuristics, the Scheffé surrogate and its maximum, run files and their errors."""
import json

import numpy as np
import pytest

from engine.config import from_dict
from engine.shaping.mix_job import PROPOSAL_JSON, MixSearchConfig, read_runs, run_mixture_search
from engine.shaping.mixture_search import (
    RunRecord,
    Runs,
    RunsError,
    ScheffeModel,
    SurrogateConfig,
    alpha_blends,
    fit_scheffe,
    leave_one_out_norm,
    maximise_on_simplex,
    project_to_simplex,
    propose_mixture,
    scheffe_features,
    seed_designs,
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
    assert 0 < unc["loo_rmse"] < 0.01 and unc["resamples"] == 20 and unc["weights_l1_median"] < 0.1


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
