"""The Scheffé quadratic surrogate of MoDoMoDo's mixture search: fit, uncertainty, maximum on the simplex.

Past runs are (weights on the simplex, eval score) pairs. The surrogate is the Scheffé quadratic
mixture model  f(w) = sum_i b_i w_i + sum_{i<j} b_ij w_i w_j  (no intercept: on the simplex a
constant is sum_i c w_i, so MoDoMoDo's [1, w, w (x) w] design is rank-deficient there; this one is
not). It is fitted by ridge with the strength chosen by exact leave-one-out CV and maximised on
the simplex (exactly, over every face, for up to `exact_max_domains` domains). Its reported
prediction error is nested CV (the ridge re-chosen without the held-out run), and each bootstrap
resample re-chooses the ridge too: the minimum LOO error over the grid is optimistic.
Which runs to launch (seed designs, heuristics, the next round) is engine/shaping/mixture_search.py.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from engine.config import ConfigError


class RunsError(ConfigError):
    """Past runs that cannot be used as given (a ConfigError: the CLI prints it)."""


@dataclass
class RunRecord:
    weights: dict[str, float]
    score: float
    name: str = ""
    where: str = ""  # file:line, for error messages


@dataclass
class Runs:
    domains: list[str]
    weights: np.ndarray  # (runs, domains), rows on the simplex
    scores: np.ndarray  # (runs,)
    names: list[str]


@dataclass
class SurrogateConfig:
    ridge_min: float = 1e-6  # ridge strengths tried by leave-one-out CV: log-spaced between min and max
    ridge_max: float = 100.0  # (strengths apply to terms scaled to unit RMS)
    ridge_points: int = 33  # grid size
    exact_max_domains: int = 12  # up to this many domains the maximum is found exactly (2^n faces); above: ascent
    random_starts: int = 64  # ascent only: Dirichlet(1) starts besides the vertices and the centroid
    ascent_steps: int = 3000  # ascent only: projected-gradient steps per start
    bootstrap: int = 200  # residual-bootstrap refits for the spread of the proposal (0 = none)
    seed: int = 0  # bootstrap draws and ascent starts

    def validate(self) -> None:
        if not 0 < self.ridge_min <= self.ridge_max:
            raise ConfigError(f"surrogate: need 0 < ridge_min <= ridge_max, got {self.ridge_min}, {self.ridge_max}")
        if self.ridge_points < 1 or self.bootstrap < 0 or self.random_starts < 0 or self.ascent_steps < 1:
            raise ConfigError("surrogate: ridge_points and ascent_steps must be >= 1; bootstrap and random_starts >= 0")
        if self.exact_max_domains < 1:
            raise ConfigError(f"surrogate.exact_max_domains must be >= 1, got {self.exact_max_domains}")


# ----- inputs -----

def validate_runs(records: Sequence[RunRecord], domains: Sequence[str] = (), *, sum_tolerance: float = 1e-3) -> Runs:
    """Records -> a weight matrix over `domains` (empty: every name the records use, first seen first).

    Unknown domains, negative or non-finite weights, weights not summing to 1 within
    `sum_tolerance`, non-finite scores and domains no run ever uses are errors. Weights a record
    leaves out are 0.
    """
    if not records:
        raise RunsError("no runs given")
    names = list(domains) or list(dict.fromkeys(k for r in records for k in r.weights))
    if len(set(names)) != len(names):
        raise RunsError(f"domains listed twice: {names}")
    index = {d: i for i, d in enumerate(names)}
    W = np.zeros((len(records), len(names)))
    y = np.zeros(len(records))
    for row, rec in enumerate(records):
        where = rec.where or f"run {row}"
        unknown = sorted(set(rec.weights) - set(index))
        if unknown:
            raise RunsError(f"{where}: unknown domain(s) {unknown}; expected {names}")
        for d, w in rec.weights.items():
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
                raise RunsError(f"{where}: weight of {d!r} must be a finite number >= 0, got {w!r}")
            W[row, index[d]] = float(w)
        total = W[row].sum()
        if abs(total - 1.0) > sum_tolerance:
            raise RunsError(f"{where}: weights sum to {total:.6g}, not 1 (tolerance {sum_tolerance}); weights are mixture shares")
        if isinstance(rec.score, bool) or not isinstance(rec.score, (int, float)) or not math.isfinite(rec.score):
            raise RunsError(f"{where}: score must be a finite number, got {rec.score!r}")
        y[row] = float(rec.score)
    unused = [d for d, col in zip(names, W.T) if not col.any()]
    if unused:
        raise RunsError(f"domain(s) {unused} have weight 0 in every run; nothing can be learned about them (drop them or add runs)")
    W /= W.sum(axis=1, keepdims=True)  # exact simplex points from within-tolerance ones
    return Runs(names, W, y, [r.name or r.where or f"run {i}" for i, r in enumerate(records)])


# ----- the Scheffé quadratic surrogate -----

def pair_indices(n: int) -> list[tuple[int, int]]:
    return list(itertools.combinations(range(n), 2))


def scheffe_features(W: np.ndarray) -> np.ndarray:
    """[w_1 .. w_n, w_i w_j for i < j]: n + n(n-1)/2 columns, no intercept."""
    W = np.atleast_2d(W)
    pairs = pair_indices(W.shape[1])
    cross = np.stack([W[:, i] * W[:, j] for i, j in pairs], axis=1) if pairs else np.zeros((len(W), 0))
    return np.hstack([W, cross])


def term_count(n: int) -> int:
    return n + n * (n - 1) // 2


@dataclass
class ScheffeModel:
    domains: list[str]
    linear: np.ndarray  # b_i
    interactions: np.ndarray  # (n, n) strictly upper triangular: b_ij at [i, j], i < j
    ridge: float
    loo_rmse: float  # LOO RMSE at `ridge`: the least over the grid, so optimistic (it chose the ridge)
    fit_rmse: float
    loo_r2: float
    ridge_path: dict[float, float] = field(default_factory=dict)  # ridge -> LOO RMSE
    nested_cv_rmse: float = math.nan  # RMS error of the whole fit (ridge choice included) on held-out runs
    nested_cv_r2: float = math.nan

    def predict(self, W: np.ndarray) -> np.ndarray:
        W = np.atleast_2d(W)
        return W @ self.linear + np.einsum("ki,ij,kj->k", W, self.interactions, W)

    def coefficients(self) -> dict[str, float]:
        out = {d: float(b) for d, b in zip(self.domains, self.linear)}
        for i, j in pair_indices(len(self.domains)):
            out[f"{self.domains[i]}*{self.domains[j]}"] = float(self.interactions[i, j])
        return out


def ridge_grid(cfg: SurrogateConfig) -> np.ndarray:
    return np.geomspace(cfg.ridge_min, cfg.ridge_max, cfg.ridge_points)


def _ridge_operators(Z: np.ndarray, lams: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per strength: the linear map scores -> coefficients (G, 1 + p, m) and the hat-matrix diagonal (G, m).

    Column 0 of Z (the intercept) is not penalised, which is ridge on the centred terms with the
    intercept from the means; one SVD of the centred terms serves the whole grid.
    """
    m = len(Z)
    mean = Z[:, 1:].mean(axis=0)
    U, s, Vt = np.linalg.svd(Z[:, 1:] - mean, full_matrices=False)
    shrink = s / (s ** 2 + lams[:, None])  # (G, k); 0 along directions the runs do not span
    slopes = np.einsum("kj,gk,ik->gji", Vt, shrink, U)  # (G, p, m)
    intercept = 1.0 / m - np.einsum("j,gji->gi", mean, slopes)  # (G, m)
    hat = 1.0 / m + (U ** 2) @ (s * shrink).T  # (m, G)
    return np.concatenate([intercept[:, None, :], slopes], axis=1), hat.T


def _loo_path(Z: np.ndarray, Y: np.ndarray, lams: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients (G, 1 + p, B) and exact leave-one-out RMSE e_i / (1 - h_ii) (G, B) for each score column of Y."""
    maps, hat = _ridge_operators(Z, lams)
    coef = maps @ Y
    with np.errstate(divide="ignore", invalid="ignore"):
        loo = (Y[None] - Z @ coef) / (1.0 - hat)[:, :, None]
        rmse = np.sqrt(np.mean(loo ** 2, axis=1))
    # leverage 1: the fit passes through that run whatever its score, so its LOO error is unbounded
    rmse[np.any(hat > 1 - 1e-9, axis=1)] = math.inf
    return coef, rmse


def _select_ridge(Z: np.ndarray, Y: np.ndarray, lams: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each score column: the grid index with the least LOO error (the first of ties), its coefficients (B, 1 + p), the LOO path."""
    coef, rmse = _loo_path(Z, Y, lams)
    best = np.argmin(rmse, axis=0)
    return best, coef[best, :, np.arange(Y.shape[1])], rmse


def nested_cv_errors(W: np.ndarray, y: np.ndarray, lams: np.ndarray) -> np.ndarray:
    """Outer leave-one-out errors of the whole fit: each run predicted by a model whose ridge was
    chosen (inner LOO) and fitted on the other runs alone. NaN with fewer than 2 runs."""
    m = len(y)
    errors = np.full(m, math.nan)
    for i in range(m if m >= 2 else 0):
        keep = np.arange(m) != i
        Z, scale = _design(W[keep])
        _, coef, _ = _select_ridge(Z, y[keep, None], lams)
        errors[i] = y[i] - np.concatenate([[1.0], scheffe_features(W[i])[0] / scale]) @ coef[0]
    return errors


def _r2(rmse: float, y: np.ndarray) -> float:
    """1 - MSE / variance of the scores (NaN when the scores do not vary or the error is undefined)."""
    spread = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - rmse ** 2 * len(y) / spread if spread > 0 and math.isfinite(rmse) else math.nan


def _design(W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[1, Scheffé terms scaled to unit RMS] and the scales (so one ridge strength treats all terms alike)."""
    X = scheffe_features(W)
    scale = np.sqrt((X ** 2).mean(axis=0))
    scale[scale == 0] = 1.0
    return np.hstack([np.ones((len(X), 1)), X / scale]), scale


def _unscale(coef: np.ndarray, scale: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Back to Scheffé coefficients; the intercept folds into the linear terms (c = sum_i c w_i on the simplex)."""
    beta = coef[1:] / scale
    inter = np.zeros((n, n))
    for k, (i, j) in enumerate(pair_indices(n)):
        inter[i, j] = beta[n + k]
    return beta[:n] + coef[0], inter


def fit_scheffe(runs: Runs, cfg: SurrogateConfig) -> ScheffeModel:
    """Ridge fit; the strength minimises the exact leave-one-out error e_i / (1 - h_ii) over the grid.

    The intercept is not penalised, so ridge shrinks towards the mean score rather than towards 0.
    That least LOO error is biased low by the choice itself, so the model also carries the nested
    CV error (`nested_cv_errors`), the estimate to report.
    """
    require_enough_runs(runs)
    W, y = runs.weights, runs.scores
    Z, scale = _design(W)
    lams = ridge_grid(cfg)
    best, coef, path = _select_ridge(Z, y[:, None], lams)
    rmse, coef = float(path[best[0], 0]), coef[0]
    resid = y - Z @ coef
    linear, inter = _unscale(coef, scale, W.shape[1])
    nested = float(np.sqrt(np.mean(nested_cv_errors(W, y, lams) ** 2)))
    return ScheffeModel(list(runs.domains), linear, inter, float(lams[best[0]]), rmse, float(np.sqrt(np.mean(resid ** 2))),
                        _r2(rmse, y), {float(k): float(v) for k, v in zip(lams, path[:, 0])}, nested, _r2(nested, y))


def require_enough_runs(runs: Runs) -> None:
    m, n = runs.weights.shape
    p = term_count(n)
    if m < p:
        raise RunsError(f"{m} runs for {n} domains: the Scheffé quadratic has {p} terms ({n} linear + {p - n} pairwise), "
                        f"so at least {p} runs are needed; the seed designs (each domain alone, each left out, uniform) "
                        "plus mixtures inside the simplex would do")
    rank = np.linalg.matrix_rank(scheffe_features(runs.weights))
    if rank < p:
        raise RunsError(f"the {m} runs span only {rank} of the {p} model terms (repeated or too similar mixtures); "
                        "add mixtures that vary pairs of domains together")


# ----- maximising a Scheffé quadratic on the simplex -----

def _sym(model: ScheffeModel) -> np.ndarray:
    U = model.interactions
    return (U + U.T) / 2.0  # f(w) = b.w + w'Mw


def _face_stationary(b: np.ndarray, M: np.ndarray, support: Sequence[int]) -> np.ndarray | None:
    """Stationary point of f on the face `support` (KKT: 2 M_SS w + b_S = mu 1, sum w = 1), if inside it."""
    s = list(support)
    k = len(s)
    K = np.zeros((k + 1, k + 1))
    K[:k, :k] = 2.0 * M[np.ix_(s, s)]
    K[:k, k] = -1.0
    K[k, :k] = 1.0
    rhs = np.concatenate([-b[s], [1.0]])
    try:
        if np.linalg.cond(K) > 1e12:
            return None  # f is flat along some line in this face: its maximum is also on a smaller face
        sol = np.linalg.solve(K, rhs)
    except np.linalg.LinAlgError:
        return None
    w_s = sol[:k]
    if np.any(w_s < -1e-12):
        return None
    w = np.zeros(len(b))
    w[s] = np.clip(w_s, 0.0, None)
    return w / w.sum()


def _maximise_exact(model: ScheffeModel) -> np.ndarray:
    """The global maximiser: it is a stationary point in the relative interior of some face (or a vertex)."""
    b, M = model.linear, _sym(model)
    n = len(b)
    best_w, best_f = None, -math.inf
    for size in range(1, n + 1):
        for support in itertools.combinations(range(n), size):
            w = _face_stationary(b, M, support)
            if w is not None:
                f = float(model.predict(w)[0])
                if f > best_f + 1e-15:
                    best_w, best_f = w, f
    return best_w


def project_to_simplex(V: np.ndarray) -> np.ndarray:
    """Euclidean projection of each row onto the probability simplex (sort-based)."""
    V = np.atleast_2d(V)
    n = V.shape[1]
    U = -np.sort(-V, axis=1)
    css = np.cumsum(U, axis=1) - 1.0
    ks = np.arange(1, n + 1)
    rho = np.count_nonzero(U - css / ks > 0, axis=1)
    theta = css[np.arange(len(V)), rho - 1] / rho
    return np.maximum(V - theta[:, None], 0.0)


def _maximise_ascent(model: ScheffeModel, cfg: SurrogateConfig) -> np.ndarray:
    """Projected-gradient ascent from the vertices, the centroid and random points; the best is polished on its face."""
    b, M = model.linear, _sym(model)
    n = len(b)
    rng = np.random.default_rng(cfg.seed)
    starts = np.vstack([np.eye(n), np.full((1, n), 1.0 / n), rng.dirichlet(np.ones(n), size=cfg.random_starts)])
    step = 1.0 / max(2.0 * np.linalg.norm(M, 2), 1e-12)  # 1 / Lipschitz constant of the gradient
    W = starts
    for _ in range(cfg.ascent_steps):
        nxt = project_to_simplex(W + step * (b + 2.0 * W @ M))
        moved = np.abs(nxt - W).max()
        W = nxt
        if moved < 1e-12:
            break
    f = model.predict(W)
    w = W[int(np.argmax(f))]
    polished = _face_stationary(b, M, np.flatnonzero(w > 1e-9))
    if polished is not None and model.predict(polished)[0] >= f.max():
        return polished
    return w


def maximise_on_simplex(model: ScheffeModel, cfg: SurrogateConfig, *, method: str = "auto") -> np.ndarray:
    """Weights maximising the surrogate: exact face enumeration (auto, up to exact_max_domains) or ascent."""
    if method not in ("auto", "exact", "ascent"):
        raise ValueError(f"method {method!r}")
    exact = method == "exact" or (method == "auto" and len(model.linear) <= cfg.exact_max_domains)
    return _maximise_exact(model) if exact else _maximise_ascent(model, cfg)


# ----- how the maximiser moves with the coefficients -----

def argmax_jacobian(model: ScheffeModel, w: np.ndarray) -> np.ndarray:
    """d(maximiser) / d(coefficients) at `w`, holding its face fixed (implicit differentiation of the KKT system).

    Coefficients in `scheffe_features` order: b_1..b_n, then b_ij for i < j. Zero at a vertex.
    """
    n = len(w)
    s = np.flatnonzero(w > 1e-9)
    k = len(s)
    J = np.zeros((n, term_count(n)))
    if k < 2:
        return J
    M = _sym(model)
    K = np.zeros((k + 1, k + 1))
    K[:k, :k] = 2.0 * M[np.ix_(s, s)]
    K[:k, k] = -1.0
    K[k, :k] = 1.0
    try:
        Kinv = np.linalg.inv(K)
    except np.linalg.LinAlgError:
        return J
    pos = {d: a for a, d in enumerate(s)}
    # K [w_S; mu] = [-b_S; 1]: d/db_i gives K dx = -e_i; d/db_ij gives K dx = -(w_j e_i + w_i e_j)
    for a, i in enumerate(s):
        J[s, i] = -Kinv[:k, a]
    for col, (i, j) in enumerate(pair_indices(n), start=n):
        if i in pos and j in pos:
            J[s, col] = -(w[j] * Kinv[:k, pos[i]] + w[i] * Kinv[:k, pos[j]])
    return J


# ----- the proposal and its uncertainty -----

def _finite(x: float) -> float | None:
    """JSON has no inf/NaN: an undefined statistic (e.g. LOO error when a run has leverage 1) is null."""
    return round(float(x), 6) if math.isfinite(x) else None


def as_weights(domains: Sequence[str], w: np.ndarray) -> dict[str, float]:
    return {d: round(float(x), 6) for d, x in zip(domains, w)}


def bootstrap_models(runs: Runs, model: ScheffeModel, cfg: SurrogateConfig) -> list[ScheffeModel]:
    """Residual-bootstrap refits (cfg.bootstrap of them, seeded by cfg.seed), each choosing its own ridge by LOO.

    The run mixtures are a design, not a random sample, so they stay fixed; each resample adds
    leverage-corrected residuals r_i / sqrt(1 - h_ii) of the fitted model, drawn with replacement,
    to its fitted scores. The ridge choice is part of the fit, so its variability is resampled too.
    """
    if cfg.bootstrap == 0:
        return []
    Z, scale = _design(runs.weights)
    maps, hat = _ridge_operators(Z, np.array([model.ridge]))
    fitted = Z @ (maps[0] @ runs.scores)
    resid = (runs.scores - fitted) / np.sqrt(np.maximum(1.0 - hat[0], 1e-9))
    resid -= resid.mean()
    rng = np.random.default_rng([cfg.seed, 1])
    Y = np.stack([fitted + rng.choice(resid, size=len(resid), replace=True) for _ in range(cfg.bootstrap)], axis=1)
    lams = ridge_grid(cfg)
    best, coefs, path = _select_ridge(Z, Y, lams)
    out = []
    for b, (k, coef) in enumerate(zip(best, coefs)):
        linear, inter = _unscale(coef, scale, runs.weights.shape[1])
        out.append(ScheffeModel(list(runs.domains), linear, inter, float(lams[k]), float(path[k, b]), math.nan, math.nan))
    return out


def bootstrap_spread(runs: Runs, model: ScheffeModel, proposal: np.ndarray, cfg: SurrogateConfig,
                     boots: list[ScheffeModel] | None = None, argmaxes: list[np.ndarray] | None = None) -> dict:
    """Residual bootstrap: spread of the argmax, of the prediction at the proposal, and of the ridges the refits chose."""
    boots = bootstrap_models(runs, model, cfg) if boots is None else boots
    if not boots:
        return {}
    argmaxes = [maximise_on_simplex(b, cfg) for b in boots] if argmaxes is None else argmaxes
    preds = [float(b.predict(proposal)[0]) for b in boots]
    A = np.array(argmaxes)
    l1 = np.abs(A - proposal).sum(axis=1)
    ridges = [b.ridge for b in boots]
    return {
        "resamples": cfg.bootstrap,
        "weights_std": as_weights(runs.domains, A.std(axis=0)),
        "weights_l1_median": round(float(np.median(l1)), 6),
        "weights_l1_p90": round(float(np.quantile(l1, 0.9)), 6),
        "predicted_score_std": round(float(np.std(preds)), 6),
        "predicted_score_p05_p95": [round(float(np.quantile(preds, 0.05)), 6), round(float(np.quantile(preds, 0.95)), 6)],
        # grid values (no interpolation between strengths), 3 significant digits like ridge_path's keys
        "ridge_p05_p95": [float(f"{np.quantile(ridges, 0.05, method='lower'):.3g}"),
                          float(f"{np.quantile(ridges, 0.95, method='higher'):.3g}")],
    }


@dataclass
class SurrogateFit:
    model: ScheffeModel
    weights: np.ndarray  # its maximiser on the simplex
    boots: list[ScheffeModel]  # residual-bootstrap refits (empty when cfg.bootstrap = 0)
    boot_weights: list[np.ndarray]  # their maximisers


def fit_surrogate(runs: Runs, cfg: SurrogateConfig) -> SurrogateFit:
    """Fit, maximise and bootstrap once; the proposal and the next-run design both read it."""
    model = fit_scheffe(runs, cfg)
    boots = bootstrap_models(runs, model, cfg)
    return SurrogateFit(model, maximise_on_simplex(model, cfg), boots, [maximise_on_simplex(b, cfg) for b in boots])


def propose_mixture(runs: Runs, cfg: SurrogateConfig, fit: SurrogateFit | None = None) -> dict:
    """Fit, maximise, and report the proposal with its predicted score and uncertainty."""
    fit = fit or fit_surrogate(runs, cfg)
    model, w = fit.model, fit.weights
    predicted = float(model.predict(w)[0])
    best = int(np.argmax(runs.scores))
    return {
        "weights": as_weights(runs.domains, w),
        "predicted_score": round(predicted, 6),
        "uncertainty": {
            "nested_cv_rmse": _finite(model.nested_cv_rmse),
            "nested_cv_r2": _finite(model.nested_cv_r2),
            **bootstrap_spread(runs, model, w, cfg, fit.boots, fit.boot_weights),
        },
        "model": {
            "terms": term_count(len(runs.domains)),
            "runs": int(len(runs.scores)),
            "ridge": model.ridge,
            "loo_rmse_at_ridge": _finite(model.loo_rmse),
            "fit_rmse": round(model.fit_rmse, 6),
            "coefficients": {k: round(v, 6) for k, v in model.coefficients().items()},
            "ridge_path": {f"{k:.3g}": _finite(v) for k, v in model.ridge_path.items()},
        },
        "best_observed": {
            "name": runs.names[best],
            "weights": as_weights(runs.domains, runs.weights[best]),
            "score": float(runs.scores[best]),
            "predicted_score": round(float(model.predict(runs.weights[best])[0]), 6),
        },
    }
