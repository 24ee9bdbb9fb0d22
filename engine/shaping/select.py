"""Selections: named subsets of a difficulty store, and the training arms built from them.

A selection draws from its `pool` (another selection; default: the universe of eligible samples),
minus the selections in `exclude`, keeps what its `kind` asks for, then caps domains:
- fullset: everything in the pool
- unsolved: the metric's unsolved samples
- buckets: samples whose stratum is in `buckets` (easy, mid, hard, unsolved)
- range: samples whose value (lambda*, rho-bar, pass rate, ...) lies in [low, high]
- random: `size` samples, or as many as selection `size_of`, drawn with the job's seed
An arm is GRPO-only(x) or SFT(x)+GRPO(y); its two sets must be disjoint. PRESETS holds the
paper's paradigms (DifficultySampling Table 4) over whichever metric the job names.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import numpy as np
import pandas as pd

from engine.config import ConfigError
from engine.shaping.store import MetricSpec, column

KINDS = ("fullset", "unsolved", "buckets", "range", "random")
# Fields that mean something for one kind only; setting one for another kind is a mistake worth reporting.
KIND_FIELDS = {
    "buckets": ("buckets",),
    "range": ("column", "low", "high", "low_inclusive", "high_inclusive", "null_value", "include_unsolved"),
    "random": ("size", "size_of", "match_domains"),
}
NO_VERDICT = ("error", "unscored")
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")  # selection and arm names become directory names


@dataclass
class SelectionSpec:
    kind: Literal["fullset", "unsolved", "buckets", "range", "random"] = "fullset"  # what to keep of the pool (module docstring)
    metric: str = ""  # namespace (pism, cmab@7b, pass_rate); "" = the job's metric
    buckets: list[str] = field(default_factory=list)  # kind buckets: strata to keep (easy, mid, hard, unsolved)
    column: str = ""  # kind range: value column of the metric; "" = its score (lambda_star, rho_bar, pass_rate)
    low: float | None = None  # kind range: lower bound (None = open)
    high: float | None = None  # kind range: upper bound (None = open)
    low_inclusive: bool = True  # kind range: value == low is kept
    high_inclusive: bool = True  # kind range: value == high is kept
    null_value: float | None = None  # kind range: a scored sample's null value counts as this (PISM: never failed -> 1.0); None = left out
    include_unsolved: bool = False  # kind range: unsolved samples count too (PISM gives them lambda* = 0.0)
    pool: str = ""  # selection to draw from; "" = every eligible sample
    exclude: list[str] = field(default_factory=list)  # selections whose samples are removed from the pool first
    size: int = 0  # kind random: how many
    size_of: str = ""  # kind random: as many as this selection
    match_domains: bool = False  # kind random: also match size_of's count in every domain
    domain_quota: dict[str, int] = field(default_factory=dict)  # at most this many per named domain (seeded draw)
    domain_quota_default: int = -1  # cap for domains not named in domain_quota; -1 = no cap

    def check(self) -> None:
        """Called by `expand` (not at YAML load) so errors can name the selection."""
        defaults = SelectionSpec()
        for kind, names in KIND_FIELDS.items():
            stray = [n for n in names if kind != self.kind and getattr(self, n) != getattr(defaults, n)]
            if stray:
                raise ConfigError(f"{stray} apply to kind {kind!r} only, not {self.kind!r}")
        if self.metric and self.kind in ("fullset", "random"):
            raise ConfigError(f"kind {self.kind!r} takes no metric (filter by a metric through pool)")
        if self.kind == "buckets" and not self.buckets:
            raise ConfigError("kind 'buckets' needs buckets, e.g. [mid, hard]")
        if self.kind == "range":
            if self.low is None and self.high is None:
                raise ConfigError("kind 'range' needs low and/or high")
            if self.low is not None and self.high is not None and self.low > self.high:
                raise ConfigError(f"range: low {self.low} > high {self.high}")
        if self.kind == "random" and (self.size > 0) == bool(self.size_of):
            raise ConfigError("kind 'random' needs exactly one of size (> 0) and size_of")
        if self.match_domains and not self.size_of:
            raise ConfigError("match_domains needs size_of")
        if self.size < 0 or self.domain_quota_default < -1 or any(v < 0 for v in self.domain_quota.values()):
            raise ConfigError("size and domain quotas must be >= 0 (domain_quota_default: -1 = no cap)")

    def references(self) -> list[str]:
        return [n for n in (self.pool, self.size_of, *self.exclude) if n]


@dataclass
class ArmSpec:
    """One training run: GRPO on selection `grpo`, after SFT on selection `sft` when set."""

    grpo: str = ""  # selection GRPO trains on
    sft: str = ""  # selection SFT trains on first; "" = GRPO-only

    def check(self) -> None:
        if not self.grpo:
            raise ConfigError("an arm needs grpo (a selection name)")


# ----- presets: the paper's paradigms -----

def _grpo_only() -> tuple[dict[str, SelectionSpec], dict[str, ArmSpec]]:
    selections = {
        "fullset": SelectionSpec("fullset"),
        "unsolved": SelectionSpec("unsolved"),
        "mid_hard": SelectionSpec("buckets", buckets=["mid", "hard"]),
        "random": SelectionSpec("random", size_of="mid_hard"),  # the control: same size as mid+hard
    }
    arms = {f"grpo_{name}": ArmSpec(grpo=name) for name in ("fullset", "unsolved", "random", "mid_hard")}
    return selections, arms


def _sft_grpo() -> tuple[dict[str, SelectionSpec], dict[str, ArmSpec]]:
    # rand_m / rand_h: random sets the size of mid / hard. Where a pair puts a random set beside another
    # set, the random one is drawn without that set's samples, so SFT and GRPO never share a sample.
    selections = {
        "mid": SelectionSpec("buckets", buckets=["mid"]),
        "hard": SelectionSpec("buckets", buckets=["hard"]),
        "rand_m": SelectionSpec("random", size_of="mid"),
        "rand_h": SelectionSpec("random", size_of="hard"),
        "rand_m_excl_hard": SelectionSpec("random", size_of="mid", exclude=["hard"]),
        "rand_h_excl_mid": SelectionSpec("random", size_of="hard", exclude=["mid"]),
        "rand_m_excl_rand_h": SelectionSpec("random", size_of="mid", exclude=["rand_h"]),
        "rand_h_excl_rand_m": SelectionSpec("random", size_of="hard", exclude=["rand_m"]),
    }
    arms = {
        "sft_mid_grpo_hard": ArmSpec(sft="mid", grpo="hard"),
        "sft_mid_grpo_rand_h": ArmSpec(sft="mid", grpo="rand_h_excl_mid"),
        "sft_rand_m_grpo_hard": ArmSpec(sft="rand_m_excl_hard", grpo="hard"),
        "sft_rand_m_grpo_rand_h": ArmSpec(sft="rand_m", grpo="rand_h_excl_rand_m"),
        "sft_hard_grpo_mid": ArmSpec(sft="hard", grpo="mid"),
        "sft_hard_grpo_rand_m": ArmSpec(sft="hard", grpo="rand_m_excl_hard"),
        "sft_rand_h_grpo_mid": ArmSpec(sft="rand_h_excl_mid", grpo="mid"),
        "sft_rand_h_grpo_rand_m": ArmSpec(sft="rand_h", grpo="rand_m_excl_rand_h"),
    }
    return selections, arms


def _paper_table4() -> tuple[dict[str, SelectionSpec], dict[str, ArmSpec]]:
    grpo_sel, grpo_arms = _grpo_only()
    pair_sel, pair_arms = _sft_grpo()
    return grpo_sel | pair_sel, grpo_arms | pair_arms


PRESETS: dict[str, Callable[[], tuple[dict[str, SelectionSpec], dict[str, ArmSpec]]]] = {
    "grpo_only": _grpo_only,  # GRPO-only on fullset, unsolved, random (size of mid+hard), mid+hard
    "sft_grpo": _sft_grpo,  # the paper's eight SFT(x)+GRPO(y) pairs over mid, hard and their random twins
    "paper_table4": _paper_table4,  # both: stratified GRPO vs random of the same size vs SFT+GRPO
}


def expand(preset: str, selections: dict[str, SelectionSpec], arms: dict[str, ArmSpec]) -> tuple[dict[str, SelectionSpec], dict[str, ArmSpec]]:
    """The preset's selections and arms followed by the config's own; a name defined twice is an error."""
    if preset and preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; known: {sorted(PRESETS)}")
    base_sel, base_arms = PRESETS[preset]() if preset else ({}, {})
    for kind, base, own in (("selection", base_sel, selections), ("arm", base_arms, arms)):
        clash = sorted(set(base) & set(own))
        if clash:
            raise ConfigError(f"{kind}(s) {clash} are defined by preset {preset!r}; give yours other names")
        bad = [n for n in own if not _NAME.match(n)]
        if bad:
            raise ConfigError(f"{kind} names {bad} must be letters, digits, '_' or '-' (they name directories)")
    all_sel, all_arms = base_sel | selections, base_arms | arms
    for kind, specs in (("selection", all_sel), ("arm", all_arms)):
        for name, spec in specs.items():
            try:
                spec.check()
            except ConfigError as exc:
                raise ConfigError(f"{kind} {name!r}: {exc}") from exc
    for name, arm in all_arms.items():
        for role in ("grpo", "sft"):
            ref = getattr(arm, role)
            if ref and ref not in all_sel:
                raise ConfigError(f"arm {name!r}: {role} selection {ref!r} is not defined; selections: {sorted(all_sel)}")
    return all_sel, all_arms


# ----- resolving selections on the store's index -----

def seeded_rng(seed: int, *parts: Any) -> np.random.Generator:
    """A generator per (seed, purpose): a selection's draw does not depend on which others ran first."""
    digest = hashlib.sha256(json.dumps([seed, *parts], default=str).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


class Selector:
    """Resolves named selections over `universe` (one row per eligible sample, indexed by id, with
    domain, split and every `<namespace>.<column>` of the store)."""

    def __init__(self, universe: pd.DataFrame, namespaces: dict[str, MetricSpec], metric: str, seed: int,
                 specs: dict[str, SelectionSpec]):
        self.universe = universe.sort_index()
        self.namespaces, self.metric, self.seed, self.specs = namespaces, metric, seed, specs
        self.notes: dict[str, dict[str, Any]] = {}
        self._done: dict[str, pd.Index] = {}
        self._active: list[str] = []

    def resolve_all(self) -> dict[str, pd.Index]:
        return {name: self.resolve(name) for name in self.specs}

    def resolve(self, name: str) -> pd.Index:
        if name in self._done:
            return self._done[name]
        if name not in self.specs:
            raise ConfigError(f"selection {name!r} is not defined; selections: {sorted(self.specs)}")
        if name in self._active:
            raise ConfigError(f"selections refer to each other in a cycle: {' -> '.join(self._active + [name])}")
        self._active.append(name)
        try:
            spec = self.specs[name]
            pool = self.universe if not spec.pool else self.universe.loc[self.resolve(spec.pool)]
            for other in spec.exclude:
                pool = pool.drop(self.resolve(other), errors="ignore")
            kept = self._kind(name, spec, pool)
            ids = self._quota(name, spec, kept).index.sort_values()
        finally:
            self._active.pop()
        self._done[name] = ids
        return ids

    def _namespace(self, name: str, spec: SelectionSpec) -> tuple[str, MetricSpec]:
        ns = spec.metric or self.metric
        if not ns:
            raise ConfigError(f"selection {name!r}: kind {spec.kind!r} needs a metric (set metric here or for the job)")
        if ns not in self.namespaces:
            raise ConfigError(f"selection {name!r}: unknown metric {ns!r}; this store has {sorted(self.namespaces)}")
        return ns, self.namespaces[ns]

    def _kind(self, name: str, spec: SelectionSpec, pool: pd.DataFrame) -> pd.DataFrame:
        if spec.kind == "fullset":
            return pool
        if spec.kind == "random":
            return self._random(name, spec, pool)
        ns, metric = self._namespace(name, spec)
        stratum = pool[column(ns, "stratum")]
        if spec.kind in ("unsolved", "buckets") and not metric.buckets:
            raise ConfigError(f"selection {name!r}: metric {ns!r} has no buckets or unsolved flag; select a band with kind 'range'")
        if spec.kind == "unsolved":
            return pool[stratum == "unsolved"]
        if spec.kind == "buckets":
            known = metric.buckets + ("unsolved",)
            unknown = [b for b in spec.buckets if b not in known]
            if unknown:
                raise ConfigError(f"selection {name!r}: unknown bucket(s) {unknown} for {ns}; known: {list(known)}")
            return pool[stratum.isin(spec.buckets)]
        return self._range(name, spec, pool, ns, metric)

    def _range(self, name: str, spec: SelectionSpec, pool: pd.DataFrame, ns: str, metric: MetricSpec) -> pd.DataFrame:
        col = spec.column or metric.score
        if col not in metric.numeric():
            raise ConfigError(f"selection {name!r}: {col!r} is not a numeric column of {ns}; choose from {list(metric.numeric())}")
        values = pd.to_numeric(pool[column(ns, col)], errors="coerce").astype(float)
        stratum = pool[column(ns, "stratum")]
        verdict = ~stratum.isin(NO_VERDICT)
        if not spec.include_unsolved:
            verdict &= stratum != "unsolved"
        if spec.null_value is not None:
            values = values.where(values.notna() | ~verdict, spec.null_value)
        keep = verdict & values.notna()
        if spec.low is not None:
            keep &= values >= spec.low if spec.low_inclusive else values > spec.low
        if spec.high is not None:
            keep &= values <= spec.high if spec.high_inclusive else values < spec.high
        return pool[keep]

    def _random(self, name: str, spec: SelectionSpec, pool: pd.DataFrame) -> pd.DataFrame:
        if not spec.match_domains:
            size = spec.size or len(self.resolve(spec.size_of))
            if size > len(pool):
                raise ConfigError(f"selection {name!r}: random of {size} from a pool of {len(pool)}")
            return self._draw(pool, size, name)
        target = self.universe.loc[self.resolve(spec.size_of), "domain"].value_counts()
        parts = []
        for domain, size in sorted(target.items()):
            members = pool[pool["domain"] == domain]
            if size > len(members):
                raise ConfigError(f"selection {name!r}: {spec.size_of!r} has {size} samples in domain {domain!r}, the pool {len(members)}")
            parts.append(self._draw(members, int(size), name, domain))
        return pd.concat(parts) if parts else pool.iloc[:0]

    def _draw(self, frame: pd.DataFrame, size: int, *purpose: Any) -> pd.DataFrame:
        ordered = frame.sort_index()  # the draw depends on the ids, not on the order rows were read in
        return ordered.iloc[seeded_rng(self.seed, *purpose).permutation(len(ordered))[:size]]

    def _quota(self, name: str, spec: SelectionSpec, kept: pd.DataFrame) -> pd.DataFrame:
        if not spec.domain_quota and spec.domain_quota_default < 0:
            return kept
        known = set(self.universe["domain"])
        unknown = sorted(set(spec.domain_quota) - known)
        if unknown:
            raise ConfigError(f"selection {name!r}: domain_quota names unknown domain(s) {unknown}; domains: {sorted(known)}")
        parts, short = [], {}
        for domain, members in kept.groupby("domain", sort=True):
            cap = spec.domain_quota.get(domain, spec.domain_quota_default)
            parts.append(members if cap < 0 or len(members) <= cap else self._draw(members, cap, name, "quota", domain))
        for domain, cap in sorted(spec.domain_quota.items()):
            have = int((kept["domain"] == domain).sum())
            if have < cap:
                short[domain] = {"quota": cap, "available": have}
        if short:  # a quota is a cap: fewer samples is reported, not an error
            self.notes.setdefault(name, {})["quota_short"] = short
        return pd.concat(parts) if parts else kept.iloc[:0]

    def summarize(self, ids: pd.Index) -> dict[str, Any]:
        rows = self.universe.loc[ids]
        return {
            "count": int(len(rows)),
            "per_domain": {str(k): int(v) for k, v in sorted(rows["domain"].value_counts().items())},
            "per_split": {str(k): int(v) for k, v in sorted(rows["split"].value_counts().items())},
            "per_stratum": {ns: {str(k): int(v) for k, v in sorted(rows[column(ns, "stratum")].value_counts().items())}
                            for ns in sorted(self.namespaces)},
        }


def check_disjoint(arms: dict[str, ArmSpec], resolved: dict[str, pd.Index]) -> None:
    """SFT and GRPO of one arm must not share a sample: GRPO would train on what SFT already fitted."""
    for name, arm in arms.items():
        if arm.sft:
            both = resolved[arm.sft].intersection(resolved[arm.grpo])
            if len(both):
                raise ConfigError(f"arm {name!r}: SFT {arm.sft!r} and GRPO {arm.grpo!r} share {len(both)} samples "
                                  f"(e.g. {list(both[:3])}); draw one of them with exclude: [the other]")


# ----- difficulty tags that travel with a selected sample -----

def difficulty_tag(row: dict[str, Any], namespaces: dict[str, MetricSpec], primary: str, selection: str) -> dict[str, Any]:
    """meta["difficulty"] of a selected sample: scorer / bucket / score (what rl/reward.py reports per
    rollout; the verl export puts it in extra_info.difficulty), plus every metric's values and provenance."""
    metrics = {}
    for ns, spec in sorted(namespaces.items()):
        names = ["stratum"] + [n for n, _ in spec.values] + ["error", "model_id", "config_hash"]
        metrics[ns] = {n: _plain(row.get(column(ns, n))) for n in names}
    main = metrics.get(primary, {})
    score = namespaces[primary].score if primary in namespaces else None
    return {"scorer": primary or None, "bucket": main.get("bucket"), "score": main.get(score) if score else None,
            "stratum": main.get("stratum"), "selection": selection, "metrics": metrics}


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    return value.item() if isinstance(value, np.generic) else value
