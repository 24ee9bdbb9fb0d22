"""The online difficulty sampler: which prompts the next GRPO step trains on.

API (used by the TRL backend, rl/grpo/trl_sampler.py, and the verl plugin, rl/grpo/verl_sampler.py):

    from rl.sampler import SamplerConfig, build_sampler
    sampler = build_sampler(cfg.sampler, rows, seed)  # rows: per-sample dicts with "id", "extra_info" (the verl parquet's)
    ids = sampler.next_batch(n)            # n distinct sample ids for the next step (deterministic under the seed)
    sampler.update(ids, verdicts)          # one entry per scored rollout: id, passed (True/False/None = not judged)
    state = sampler.state_dict()           # JSON-serialisable; save it with the trainer's checkpoint
    sampler.load_state_dict(state)         # same next_batch sequence as a run that never stopped
    sampler.posterior()                    # per id: alpha, beta, mean, passes, fails, verdicts (write-back)
    OnlineDifficultySampler.from_prior(sampler.prior_dict(), cfg=..., seed=...)  # the same pool and prior (verl write-back)

`OnlineDifficultySampler(ids, prior_alpha, prior_beta, cfg=..., seed=..., domains=..., passes=..., fails=...)`
is the class behind build_sampler (rl/sampler/prior.py turns the store's scores into its prior).

Model: sample i's pass rate has a Beta(alpha_i, beta_i) posterior, alpha_i = a0_i + s_i and beta_i =
b0_i + f_i, where (a0, b0) is the calibrated prior and s, f are its passes and fails. Before a new
group is added, s and f are multiplied by `discount`: training on a sample moves its pass rate, so
its latest groups count most. Each step, per domain quota:
1. exploration: each slot is, with probability epsilon, a uniform draw from the pool;
2. every other slot: predicted pass rate p_i = the posterior mean (or a posterior draw: Thompson);
   candidates are the samples with p_i in [band_low, band_high], minus those whose last
   `skip_streak` groups were all-equal (all passed or all failed: no GRPO gradient), each of which
   is kept anyway with probability skip_explore; the candidates with the highest p_i(1 - p_i) are
   taken (GRPO's expected improvement grows with the pass rate's variance; with Thompson draws the
   ranking itself explores: an uncertain sample sometimes draws near 0.5); if too few, the rest
   come from outside the band, again the highest p_i(1 - p_i) first;
3. a sample drawn at step t is not drawn again before step t + cooldown_steps + 1 (unless its
   domain has no other samples left).
Domain quotas: the batch's slots go to the domain furthest below its weight's share of every draw
so far, so the realized mixture tracks the weights (MoDoMoDo plans) at every step.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any, Mapping, Sequence

import numpy as np

from engine.config import ConfigError
from rl.sampler.config import SamplerConfig

STATE_VERSION = 1
NEVER = -(10**9)  # "step" of a sample never drawn


def informative_probability(p: np.ndarray | float, group_size: int) -> np.ndarray | float:
    """P(a group of `group_size` Bernoulli(p) verdicts is not all-equal): the chance GRPO gets a gradient."""
    p = np.asarray(p, dtype=float)
    return 1.0 - p**group_size - (1.0 - p) ** group_size


def ids_digest(ids: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


class OnlineDifficultySampler:
    """Beta-Bernoulli posterior per sample id; picks prompts near pass rate 0.5 (module docstring)."""

    def __init__(self, ids: Sequence[str], prior_alpha: Sequence[float], prior_beta: Sequence[float], *, cfg: SamplerConfig,
                 seed: int, domains: Sequence[str] | None = None, passes: Sequence[float] | None = None,
                 fails: Sequence[float] | None = None, domain_weights: Mapping[str, float] | None = None):
        cfg.validate()
        self.ids = [str(i) for i in ids]
        if len(set(self.ids)) != len(self.ids):
            raise ConfigError("sampler: sample ids must be unique (one prompt per id)")
        self.index = {sid: k for k, sid in enumerate(self.ids)}
        n = len(self.ids)
        self.cfg = cfg
        self.a0 = np.asarray(prior_alpha, dtype=float)
        self.b0 = np.asarray(prior_beta, dtype=float)
        if self.a0.shape != (n,) or self.b0.shape != (n,) or not (np.all(self.a0 > 0) and np.all(self.b0 > 0)):
            raise ConfigError("sampler: need one positive prior alpha and beta per sample id")
        self.domains = np.asarray(list(domains) if domains is not None else [""] * n, dtype=object)
        if self.domains.shape != (n,):
            raise ConfigError("sampler: need one domain per sample id")
        self.weights = self._resolve_weights(dict(cfg.domain_weights if domain_weights is None else domain_weights))
        self.members = {d: np.flatnonzero(self.domains == d) for d in self.weights}
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.step = 0
        self.passes = np.zeros(n) if passes is None else np.asarray(passes, dtype=float).copy()
        self.fails = np.zeros(n) if fails is None else np.asarray(fails, dtype=float).copy()
        self.verdicts = np.zeros(n, dtype=np.int64)  # judged rollouts seen in this run (not discounted)
        self.streak = np.zeros(n, dtype=np.int64)  # consecutive all-equal groups
        self.last_drawn = np.full(n, NEVER, dtype=np.int64)
        self.drawn = {d: 0 for d in self.weights}

    # ----- domain quotas -----

    def _resolve_weights(self, weights: dict[str, float]) -> dict[str, float]:
        present = list(OrderedDict.fromkeys(sorted(str(d) for d in self.domains)))
        if not weights:  # no quota: one pool
            return {"*": 1.0}
        unknown = sorted(set(weights) - set(present))
        if unknown:
            raise ConfigError(f"sampler.domain_weights names domains no sample has: {unknown} (present: {present})")
        active = {d: float(w) for d, w in weights.items() if w > 0}
        total = sum(active.values())
        return {d: w / total for d, w in active.items()}

    def _domain_members(self, domain: str) -> np.ndarray:
        if domain == "*":
            return np.arange(len(self.ids))
        return self.members[domain]

    def _quota(self, n: int) -> dict[str, int]:
        """Slots per domain: each to the domain furthest below its share of all draws (sizes permitting)."""
        total = sum(self.drawn.values()) + n
        need = {d: w * total - self.drawn[d] for d, w in self.weights.items()}
        alloc = {d: 0 for d in self.weights}
        for _ in range(n):
            open_ = [d for d in self.weights if alloc[d] < len(self._domain_members(d))]
            if not open_:
                raise ConfigError(f"sampler: a batch of {n} prompts is more than the weighted domains hold")
            best = max(open_, key=lambda d: need[d] - alloc[d])
            alloc[best] += 1
        return alloc

    # ----- drawing -----

    def predicted(self) -> np.ndarray:
        """Posterior mean pass rate per id (in `ids` order)."""
        return (self.a0 + self.passes) / (self.a0 + self.b0 + self.passes + self.fails)

    def _pick(self, members: np.ndarray, k: int) -> list[int]:
        cooled = self.step - self.last_drawn[members] > self.cfg.cooldown_steps
        pool = members[cooled] if cooled.sum() >= k else members
        alpha, beta = self.a0[pool] + self.passes[pool], self.b0[pool] + self.fails[pool]
        p = self.rng.beta(alpha, beta) if self.cfg.exploration == "thompson" else alpha / (alpha + beta)
        weight = p * (1.0 - p)
        streaky = (self.streak[pool] >= self.cfg.skip_streak) if self.cfg.skip_streak else np.zeros(len(pool), bool)
        spared = self.rng.random(len(pool)) < self.cfg.skip_explore
        candidate = (p >= self.cfg.band_low) & (p <= self.cfg.band_high) & ~(streaky & ~spared)
        tiebreak = self.rng.random(len(pool))  # equal predictions (mean mode, same prior) in a seeded order
        order = np.lexsort((tiebreak, -weight, ~candidate))  # candidates first, the highest p(1 - p) first
        n_explore = int(self.rng.binomial(k, self.cfg.epsilon))
        exploit = list(order[: k - n_explore])
        rest = np.setdiff1d(np.arange(len(pool)), exploit)
        explore = list(self.rng.choice(rest, size=n_explore, replace=False)) if n_explore else []
        return [int(pool[j]) for j in exploit + explore]

    def next_batch(self, n: int) -> list[str]:
        """n distinct sample ids for the next step; advances the step counter."""
        if not 0 < n <= len(self.ids):
            raise ConfigError(f"sampler: asked for {n} prompts from a pool of {len(self.ids)}")
        chosen: list[int] = []
        for domain, k in self._quota(n).items():
            if k:
                chosen += self._pick(self._domain_members(domain), k)
                self.drawn[domain] += k
        self.last_drawn[chosen] = self.step
        self.step += 1
        return [self.ids[i] for i in chosen]

    # ----- learning -----

    def update(self, ids: Sequence[Any], verdicts: Sequence[bool | None]) -> None:
        """One group per id: its rollouts' verdicts (None: not judged, counts neither way)."""
        if len(ids) != len(verdicts):
            raise ValueError(f"sampler.update: {len(ids)} ids for {len(verdicts)} verdicts")
        groups: dict[int, list[bool]] = OrderedDict()
        for sid, verdict in zip(ids, verdicts):
            key = self.index.get(str(sid))
            if key is None:
                raise KeyError(f"sampler.update: id {sid!r} is not one of the sampler's samples")
            if verdict is not None:
                groups.setdefault(key, []).append(bool(verdict))
        for i, group in groups.items():
            fade = self.cfg.discount
            s = sum(group)
            f = len(group) - s
            self.passes[i] = self.passes[i] * fade + s
            self.fails[i] = self.fails[i] * fade + f
            self.verdicts[i] += len(group)
            if len(group) >= 2:
                self.streak[i] = self.streak[i] + 1 if s in (0, len(group)) else 0

    # ----- state -----

    def state_dict(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "ids_digest": ids_digest(self.ids), "seed": self.seed, "step": self.step,
                "passes": self.passes.tolist(), "fails": self.fails.tolist(), "verdicts": self.verdicts.tolist(),
                "streak": self.streak.tolist(), "last_drawn": self.last_drawn.tolist(),
                "drawn": dict(self.drawn), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise ConfigError(f"sampler state version {state.get('version')!r}, expected {STATE_VERSION}")
        if state["ids_digest"] != ids_digest(self.ids):
            raise ConfigError("sampler state was saved for another set of samples (ids differ): resume with the same data")
        if dict(state["drawn"]).keys() != self.drawn.keys():
            raise ConfigError(f"sampler state has domain quotas {sorted(state['drawn'])}, this config {sorted(self.drawn)}")
        self.step = int(state["step"])
        self.passes = np.asarray(state["passes"], dtype=float)
        self.fails = np.asarray(state["fails"], dtype=float)
        self.verdicts = np.asarray(state["verdicts"], dtype=np.int64)
        self.streak = np.asarray(state["streak"], dtype=np.int64)
        self.last_drawn = np.asarray(state["last_drawn"], dtype=np.int64)
        self.drawn = {d: int(v) for d, v in state["drawn"].items()}
        self.rng.bit_generator.state = state["rng"]

    def prior_dict(self) -> dict[str, Any]:
        """The pool and its prior (JSON). With a state_dict it rebuilds this sampler (`from_prior`):
        how the verl write-back recovers the sampler the plugin ran (rl/grpo/verl_sampler_writeback.py)."""
        return {"ids": list(self.ids), "alpha": self.a0.tolist(), "beta": self.b0.tolist(),
                "domains": [str(d) for d in self.domains], "domain_weights": {} if "*" in self.weights else dict(self.weights)}

    @classmethod
    def from_prior(cls, prior: Mapping[str, Any], *, cfg: SamplerConfig, seed: int) -> "OnlineDifficultySampler":
        return cls(prior["ids"], prior["alpha"], prior["beta"], cfg=cfg, seed=seed, domains=prior["domains"],
                   domain_weights=prior["domain_weights"])

    def posterior(self) -> list[dict[str, Any]]:
        """Per id: the posterior and its evidence (what the write-back stores)."""
        mean = self.predicted()
        return [{"id": sid, "alpha": float(self.a0[i] + self.passes[i]), "beta": float(self.b0[i] + self.fails[i]),
                 "mean": float(mean[i]), "prior_mean": float(self.a0[i] / (self.a0[i] + self.b0[i])),
                 "passes": float(self.passes[i]), "fails": float(self.fails[i]), "verdicts": int(self.verdicts[i]),
                 "domain": str(self.domains[i])} for i, sid in enumerate(self.ids)]
