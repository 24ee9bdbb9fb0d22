"""Difficulty scores -> a Beta prior on each sample's pass rate, and the sampler built from it.

Where the scores come from: the difficulty store (`sampler.store`, joined by sample id) or, when
no store is named, the difficulty tags a selection wrote into each sample (`extra_info.difficulty`
of the verl parquet: every metric's stratum and values).

Calibration: a scorer's stratum (PISM easy/mid/hard/unsolved, CMAB's) maps to a prior pass rate.
Where the `prior.pass_rate` namespace holds earlier pass rates, each stratum's rate is fitted to
them: (sum of passes + k * mapped rate) / (sum of verdicts + k), k = prior.fit_strength; a stratum
without such samples keeps the mapped rate (prior.calibration). A sample's prior mean m is the
mean of its scorers' calibrated rates (prior.default when none scored it) and its prior is
Beta(m * s, (1 - m) * s), s = prior.strength. The earlier pass rates then count as verdicts on
top: passes = w * pass_rate * n, fails = w * (1 - pass_rate) * n, w = prior.evidence_weight.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import yaml

from engine.config import ConfigError
from engine.paths import repo_path
from engine.shaping.store import column, parse_namespace, read_manifest, read_store
from rl.sampler.config import SamplerConfig
from rl.sampler.core import OnlineDifficultySampler

NO_VERDICT = ("error", "unscored", None)


def _difficulty(extra_info: dict[str, Any]) -> dict[str, Any]:
    tag = extra_info.get("difficulty")
    if isinstance(tag, str):
        tag = json.loads(tag)
    return tag or {}


def scores_from_tags(extra_infos: Sequence[dict[str, Any]], cfg: SamplerConfig) -> dict[str, dict[str, Any]]:
    """id -> {"strata": {ns: stratum}, "pass_rate": (rate, n) or None} from extra_info.difficulty."""
    out = {}
    for info in extra_infos:
        metrics = _difficulty(info).get("metrics") or {}
        strata = {ns: (metrics.get(ns) or {}).get("stratum") for ns in cfg.prior.scorers}
        evidence = None
        if cfg.prior.pass_rate:
            got = metrics.get(cfg.prior.pass_rate) or {}
            evidence = (got.get("pass_rate"), got.get("n"))
        out[str(info["id"])] = {"strata": strata, "pass_rate": evidence}
    return out


def scores_from_store(store: str, ids: Sequence[str], cfg: SamplerConfig) -> dict[str, dict[str, Any]]:
    """The same, read from a difficulty store; ids the store does not hold get no scores."""
    present = set(read_manifest(store)["sources"])
    wanted = [*cfg.prior.scorers, *([cfg.prior.pass_rate] if cfg.prior.pass_rate else [])]
    missing = [ns for ns in wanted if ns not in present]
    if missing:
        raise ConfigError(f"sampler: store {store} has no namespace {missing} (it has {sorted(present)})")
    cols = ["id", *(column(ns, "stratum") for ns in cfg.prior.scorers)]
    if cfg.prior.pass_rate:
        cols += [column(cfg.prior.pass_rate, "pass_rate"), column(cfg.prior.pass_rate, "n")]
    rows = {r["id"]: r for r in read_store(store, where={"id": list(ids)}, columns=cols).to_pylist()}
    out = {}
    for sid in ids:
        row = rows.get(sid, {})
        evidence = None
        if cfg.prior.pass_rate:
            evidence = (row.get(column(cfg.prior.pass_rate, "pass_rate")), row.get(column(cfg.prior.pass_rate, "n")))
        out[sid] = {"strata": {ns: row.get(column(ns, "stratum")) for ns in cfg.prior.scorers}, "pass_rate": evidence}
    return out


def _evidence(entry: dict[str, Any]) -> tuple[float, int] | None:
    got = entry.get("pass_rate")
    if not got or got[0] is None or not got[1]:
        return None
    return float(got[0]), int(got[1])


def calibrate(scores: dict[str, dict[str, Any]], cfg: SamplerConfig) -> dict[str, dict[str, Any]]:
    """"<metric>:<stratum>" -> {rate, mapped, fitted_on (verdicts)}: the mapping, fitted where pass rates exist."""
    sums: dict[str, list[float]] = {}
    for entry in scores.values():
        ev = _evidence(entry)
        if ev is None:
            continue
        for ns, stratum in entry["strata"].items():
            if stratum not in NO_VERDICT:
                acc = sums.setdefault(f"{parse_namespace(ns)[0]}:{stratum}", [0.0, 0.0])
                acc[0] += ev[0] * ev[1]
                acc[1] += ev[1]
    k = cfg.prior.fit_strength
    table = {}
    for key in sorted(set(cfg.prior.calibration) | set(sums)):
        mapped = cfg.prior.calibration.get(key, cfg.prior.default)
        passes, n = sums.get(key, (0.0, 0.0))
        rate = (passes + k * mapped) / (n + k) if n + k > 0 else mapped
        table[key] = {"rate": min(max(rate, 1e-3), 1 - 1e-3), "mapped": mapped, "fitted_on": int(n)}
    return table


def prior_mean(strata: dict[str, Any], table: dict[str, dict[str, Any]], default: float) -> float:
    rates = [table[f"{parse_namespace(ns)[0]}:{s}"]["rate"] for ns, s in strata.items()
             if s not in NO_VERDICT and f"{parse_namespace(ns)[0]}:{s}" in table]
    return sum(rates) / len(rates) if rates else default


def mixture_weights(cfg: SamplerConfig) -> tuple[dict[str, float], str]:
    """(domain weights, domain key): from sampler.mixture (a `gradus mix` YAML) or the sampler's own fields."""
    if not cfg.mixture:
        return dict(cfg.domain_weights), cfg.domain_key
    path = repo_path(cfg.mixture)
    if not Path(path).is_file():
        raise ConfigError(f"sampler.mixture {cfg.mixture} does not exist")
    mix = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(mix.get("weights"), dict) or not mix["weights"]:
        raise ConfigError(f"sampler.mixture {cfg.mixture}: no weights mapping (a `gradus mix` config has one)")
    return {str(k): float(v) for k, v in mix["weights"].items()}, str(mix.get("group_by") or "domain")


def build_sampler(cfg: SamplerConfig, extra_infos: Sequence[dict[str, Any]], seed: int) -> tuple[OnlineDifficultySampler, dict[str, Any]]:
    """The sampler over these samples (verl extra_info rows, in dataset order) and a report of its prior."""
    cfg.validate()
    for i, info in enumerate(extra_infos):
        if not isinstance(info, dict) or info.get("id") is None:
            raise ConfigError(f"sampler: training row {i} has no extra_info.id (export the data with gradus)")
    ids = [str(info["id"]) for info in extra_infos]
    scores = scores_from_store(cfg.store, ids, cfg) if cfg.store else scores_from_tags(extra_infos, cfg)
    table = calibrate(scores, cfg)
    weights, key = mixture_weights(cfg)
    domains = [info.get(key) for info in extra_infos]
    if weights and any(d is None for d in domains):
        raise ConfigError(f"sampler: domain quotas need extra_info.{key} on every sample; {domains.count(None)} lack it")
    s, w = cfg.prior.strength, cfg.prior.evidence_weight
    means, passes, fails = [], [], []
    for sid in ids:
        means.append(prior_mean(scores[sid]["strata"], table, cfg.prior.default))
        ev = _evidence(scores[sid])
        passes.append(w * ev[0] * ev[1] if ev else 0.0)
        fails.append(w * (1 - ev[0]) * ev[1] if ev else 0.0)
    sampler = OnlineDifficultySampler(ids, [m * s for m in means], [(1 - m) * s for m in means], cfg=cfg, seed=seed,
                                      domains=[str(d) for d in domains], passes=passes, fails=fails, domain_weights=weights)
    scored = sum(1 for sid in ids if any(v not in NO_VERDICT for v in scores[sid]["strata"].values()))
    report = {"samples": len(ids), "scored": scored, "with_pass_rate": sum(1 for sid in ids if _evidence(scores[sid])),
              "calibration": table, "prior_mean": round(sum(means) / len(means), 4), "domain_weights": sampler.weights,
              "source": cfg.store or "extra_info.difficulty"}
    return sampler, report
