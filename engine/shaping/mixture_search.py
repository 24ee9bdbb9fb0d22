"""MoDoMoDo mixture search: which runs to launch and what simple rules propose.

Seed designs (each domain alone, each left out, uniform), the "alpha" and "norm" heuristics read
from them, and the next round of runs: a sequential design that completes the runs the surrogate
(engine/shaping/mixture_surrogate.py) needs, then places runs where they best locate its maximum.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from engine.config import ConfigError
from engine.shaping.mixture_surrogate import (
    Runs,
    RunsError,
    ScheffeModel,
    SurrogateConfig,
    SurrogateFit,
    argmax_jacobian,
    as_weights,
    fit_surrogate,
    scheffe_features,
    term_count,
)


# ----- seed designs and heuristics -----

def seed_designs(domains: Sequence[str]) -> dict[str, np.ndarray]:
    """MoDoMoDo's seed runs: each domain alone, each left out, and uniform (duplicates dropped)."""
    n = len(domains)
    if n == 0:
        raise RunsError("no domains")
    eye = np.eye(n)
    out: dict[str, np.ndarray] = {f"only_{d}": eye[i] for i, d in enumerate(domains)}
    if n > 2:  # with two domains "without a" is "only b"
        out.update({f"without_{d}": (1 - eye[i]) / (n - 1) for i, d in enumerate(domains)})
    if n > 1:
        out["uniform"] = np.full(n, 1.0 / n)
    return out


def design_scores(runs: Runs, tolerance: float = 1e-3) -> dict[str, float]:
    """Mean score of the runs at each seed design (within `tolerance` in every weight); absent designs left out."""
    out = {}
    for name, w in seed_designs(runs.domains).items():
        hit = np.all(np.abs(runs.weights - w) <= tolerance, axis=1)
        if hit.any():
            out[name] = float(runs.scores[hit].mean())
    return out


def alpha_blends(runs: Runs, alphas: Sequence[float], tolerance: float = 1e-3) -> dict[str, np.ndarray] | str:
    """Score-weighted blends: w(alpha) = alpha * s / sum(s) + (1 - alpha) * uniform, s = each domain's solo score.

    Our reading of MoDoMoDo's "alpha" heuristic (alpha 0 = uniform, 1 = proportional to the
    single-domain seed runs). Returns a reason string when a solo run is missing.
    """
    seen = design_scores(runs, tolerance)
    missing = [d for d in runs.domains if f"only_{d}" not in seen]
    if missing:
        return f"needs a single-domain run for {missing}"
    s = np.array([max(seen[f"only_{d}"], 0.0) for d in runs.domains])
    if s.sum() <= 0:
        return "every single-domain score is <= 0"
    uniform = np.full(len(s), 1.0 / len(s))
    return {f"alpha_{a:g}": a * s / s.sum() + (1 - a) * uniform for a in alphas}


def leave_one_out_norm(runs: Runs, tolerance: float = 1e-3) -> np.ndarray | str:
    """w_i proportional to max(0, score(uniform) - score(without i)): what dropping a domain costs, normalised.

    Our reading of MoDoMoDo's "norm" heuristic. Returns a reason string when it cannot be formed.
    """
    seen = design_scores(runs, tolerance)
    needed = ["uniform"] + [f"without_{d}" for d in runs.domains]
    missing = [k for k in needed if k not in seen]
    if missing:
        return f"needs the uniform and leave-one-out runs; missing {missing}"
    cost = np.array([max(seen["uniform"] - seen[f"without_{d}"], 0.0) for d in runs.domains])
    if cost.sum() <= 0:
        return "no domain's removal lowered the score"
    return cost / cost.sum()


def heuristic_proposals(runs: Runs, alphas: Sequence[float], tolerance: float) -> dict[str, dict]:
    """Every heuristic's weights, or the reason it could not be formed."""
    out: dict[str, dict] = {}
    blends = alpha_blends(runs, alphas, tolerance)
    if isinstance(blends, str):
        out["alpha"] = {"skipped": blends}
    else:
        out.update({k: {"weights": as_weights(runs.domains, v)} for k, v in blends.items()})
    norm = leave_one_out_norm(runs, tolerance)
    out["norm"] = {"skipped": norm} if isinstance(norm, str) else {"weights": as_weights(runs.domains, norm)}
    return out


def missing_seed_designs(runs: Runs, tolerance: float) -> dict[str, dict[str, float]]:
    """Seed designs no run has covered yet: the next runs to launch."""
    seen = design_scores(runs, tolerance)
    return {k: as_weights(runs.domains, w) for k, w in seed_designs(runs.domains).items() if k not in seen}


# ----- the next runs: sequential design -----
#
# One-shot designs waste runs: with noise, the maximiser is only as well located as the gradient
# of the surrogate at it is estimated, and that depends on where the runs are (Dirichlet(1) random
# mixtures crowd the centre and say little about the pairwise terms). So after each round the
# search proposes the runs that most shrink the expected squared error of the maximiser
# (L-optimal design for the argmax, delta method), averaged over the bootstrap refits
# (pseudo-Bayesian: a refit whose maximiser sits on another face still counts).

@dataclass
class NextRunsConfig:
    count: int = 5  # mixtures proposed for the next round (0 = none); score them, append to the runs file, search again
    criterion: Literal["argmax", "d_optimal", "bootstrap_argmax"] = "argmax"  # argmax: runs that best locate the maximiser; d_optimal: best overall fit; bootstrap_argmax: maxima of bootstrap refits
    include_proposal: bool = False  # make the first proposed run the surrogate's maximum (checks its prediction; locates it less well)
    candidates: int = 2000  # candidate mixtures searched: a simplex lattice (vertices, midpoints, ...) plus Dirichlet(1) points
    seed: int = 0  # the random candidates

    def validate(self) -> None:
        if self.count < 0:
            raise ConfigError(f"next_runs.count must be >= 0, got {self.count}")
        if self.candidates < 1:
            raise ConfigError(f"next_runs.candidates must be >= 1, got {self.candidates}")


def simplex_lattice(n: int, m: int) -> np.ndarray:
    """Every mixture with weights in {0, 1/m, ..., 1} (the {n, m} simplex lattice), stars and bars."""
    rows = []
    for bars in itertools.combinations(range(m + n - 1), n - 1):
        edges = (-1,) + bars + (m + n - 1,)
        rows.append([edges[k + 1] - edges[k] - 1 for k in range(n)])
    return np.array(rows, dtype=float) / m


def candidate_mixtures(domains: Sequence[str], count: int, seed: int) -> np.ndarray:
    """The seed designs, the finest simplex lattice with at most half of `count` points (at least
    vertices + edge midpoints: the D-optimal support of a Scheffé quadratic) and Dirichlet(1) points."""
    n = len(domains)
    m = 2
    while n > 1 and math.comb(m + n, n - 1) <= count // 2:
        m += 1
    parts = [np.array(list(seed_designs(domains).values())), simplex_lattice(n, m) if n > 1 else np.ones((1, 1))]
    extra = count - sum(len(p) for p in parts)
    if extra > 0:
        parts.append(np.random.default_rng([seed, 2]).dirichlet(np.ones(n), size=extra))
    return np.unique(np.round(np.vstack(parts), 12), axis=0)


def _inverse_information(X: np.ndarray, p: int) -> np.ndarray:
    info = X.T @ X
    delta = 1e-8 * max(float(np.trace(info)) / p, 1.0)  # keeps a not-yet-identified design invertible
    return np.linalg.inv(info + delta * np.eye(p))


def _greedy_design(X: np.ndarray, C: np.ndarray, count: int, A: np.ndarray | None) -> tuple[list[int], float]:
    """Add `count` rows of C (repeats allowed) to the design X one at a time, each the best under
    trace(A (X'X)^-1) (A None: log det X'X, D-optimal); rank-one updates. Returns the picks and
    trace(A (X'X)^-1) after them (A None: nan)."""
    Minv = _inverse_information(X, C.shape[1])
    picks = []
    for _ in range(count):
        lev = np.einsum("ki,ij,kj->k", C, Minv, C)
        if A is None:
            gain = lev
        else:
            B = Minv @ A @ Minv
            gain = np.einsum("ki,ij,kj->k", C, B, C) / (1.0 + lev)
        j = int(np.argmax(gain))
        picks.append(j)
        v = Minv @ C[j]
        Minv -= np.outer(v, v) / (1.0 + C[j] @ v)
    return picks, float(np.trace(A @ Minv)) if A is not None else math.nan


def propose_next_runs(runs: Runs, cfg: SurrogateConfig, nxt: NextRunsConfig, fit: SurrogateFit | None = None,
                      *, design_tolerance: float = 1e-3) -> dict:
    """The next `nxt.count` mixtures to run (more when the surrogate cannot be fitted yet).

    Too few runs for the model: the seed designs not yet run, then D-optimal mixtures, up to one
    more than the model has terms. Otherwise, by `nxt.criterion`, with the surrogate's maximum
    first when `include_proposal`. Deterministic given the runs and the seeds.
    """
    n = len(runs.domains)
    p = term_count(n)
    X = scheffe_features(runs.weights)
    C = candidate_mixtures(runs.domains, nxt.candidates, nxt.seed)
    out: list[dict] = []

    def add(w: np.ndarray, why: str, model: ScheffeModel | None) -> None:
        rec = {"name": f"next_{len(runs.scores)}_{len(out)}", "weights": as_weights(runs.domains, w), "why": why}
        if model is not None:
            rec["predicted_score"] = round(float(model.predict(w)[0]), 6)
        out.append(rec)

    if fit is None:
        try:
            fit = fit_surrogate(runs, cfg)
        except RunsError:
            fit = None
    if fit is None:  # cold start: complete a design the quadratic can be fitted on
        seen = design_scores(runs, design_tolerance)
        for name, w in seed_designs(runs.domains).items():
            if name not in seen:
                add(w, f"seed design {name}", None)
        have = np.vstack([X, scheffe_features(np.array([[r["weights"][d] for d in runs.domains] for r in out]))]) if out else X
        short = max(p + 1 - len(have), nxt.count - len(out), 0)
        picks, _ = _greedy_design(have, scheffe_features(C), short, None)
        for j in picks:
            add(C[j], "D-optimal: fills in the model terms", None)
        return {"criterion": "d_optimal", "reason": "too few runs to fit the surrogate", "runs": out}

    model, best = fit.model, fit.weights
    if nxt.count == 0:
        return {"criterion": nxt.criterion, "runs": []}
    fixed = []
    if nxt.include_proposal:
        add(best, "surrogate maximum", model)
        fixed.append(best)
    left = nxt.count - len(fixed)
    info: dict = {"criterion": nxt.criterion}
    if nxt.criterion == "bootstrap_argmax":
        if not fit.boots:
            raise ConfigError("next_runs.criterion=bootstrap_argmax needs surrogate.bootstrap > 0")
        for w in fit.boot_weights[:left]:
            add(w, "maximum of a bootstrap refit", model)
    else:
        have = np.vstack([X, scheffe_features(np.array(fixed))]) if fixed else X
        A = None
        if nxt.criterion == "argmax":
            Js = [argmax_jacobian(m, w) for m, w in zip([model, *fit.boots], [best, *fit.boot_weights])]
            A = np.mean([J.T @ J for J in Js], axis=0)
            if not np.trace(A) > 0:  # every refit's maximum is a vertex: nothing to locate, fit the surface instead
                A, info["criterion"] = None, "d_optimal"
                info["reason"] = "the maximum is a vertex in every refit"
        picks, after = _greedy_design(have, scheffe_features(C), left, A)
        why = "locates the maximum" if A is not None else "D-optimal: improves the fit"
        for j in picks:
            add(C[j], why, model)
        if A is not None and math.isfinite(model.nested_cv_rmse):
            # delta-method RMS error (L2) of the maximiser, noise sd taken as the nested CV RMSE (not the optimistic LOO minimum)
            now = float(np.trace(A @ _inverse_information(X, p)))
            info["argmax_rmse_now"] = round(model.nested_cv_rmse * math.sqrt(now), 6)
            info["argmax_rmse_after"] = round(model.nested_cv_rmse * math.sqrt(after), 6)
    return {**info, "runs": out}
