"""config: the difficulty-aware sampler (grpo.sampler.*), one section for the TRL and verl backends.

Every threshold of rl/sampler/core.py and rl/sampler/prior.py is a field here; docs/sampler.md
explains what each one does.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from engine.config import ConfigError

# Prior pass rate per scorer stratum, used where no pass rates exist to fit it (rl/sampler/prior.py).
# PISM: an easy sample still passes with >= 70% of the image masked, so it is near-certain on the
# clean image; hard passes the clean image (Pc(0) >= tau) but breaks under light masking; unsolved
# failed every clean try. CMAB's buckets measure attention balance, not correctness: only its
# unsolved (the model's answer was wrong) says much about the pass rate.
DEFAULT_CALIBRATION = {
    "pism:easy": 0.85, "pism:mid": 0.6, "pism:hard": 0.4, "pism:unsolved": 0.05,
    "cmab:easy": 0.6, "cmab:mid": 0.55, "cmab:hard": 0.5, "cmab:unsolved": 0.15,
}


@dataclass
class PriorConfig:
    """Per-sample Beta prior from the difficulty store (or the samples' own difficulty tags)."""

    scorers: list[str] = field(default_factory=lambda: ["pism", "cmab"])  # bucketed namespaces read (pism, pism@7b, cmab, ...)
    pass_rate: str = ""  # one pass_rate@<tag> namespace read as earlier verdicts (passes, fails) on top of the prior
    strength: float = 4.0  # pseudo-observations the calibrated prior is worth: Beta(m*s, (1-m)*s)
    default: float = 0.5  # prior pass rate of a sample no scorer scored
    calibration: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_CALIBRATION))  # "<metric>:<stratum>" -> pass rate
    fit_strength: float = 8.0  # when pass rates exist, each stratum's rate is fitted to them, shrunk to the mapping by this many pseudo-observations
    evidence_weight: float = 1.0  # what one earlier verdict counts for (< 1: it came from an earlier model)

    def validate(self) -> None:
        if self.strength <= 0 or self.fit_strength < 0 or not 0 < self.evidence_weight <= 1:
            raise ConfigError("sampler.prior: need strength > 0, fit_strength >= 0, 0 < evidence_weight <= 1")
        rates = {"default": self.default, **self.calibration}
        bad = {k: v for k, v in rates.items() if not 0 < v < 1}
        if bad:
            raise ConfigError(f"sampler.prior: prior pass rates must lie in (0, 1): {bad}")
        odd = [k for k in self.calibration if k.count(":") != 1]
        if odd:
            raise ConfigError(f"sampler.prior.calibration keys are '<metric>:<stratum>' (e.g. pism:mid), got {odd}")


@dataclass
class SamplerConfig:
    """Which prompts each GRPO step trains on: `uniform` (the trainer's shuffled order) or `online`
    (rl/sampler/core.py: Beta-Bernoulli posterior per sample, prompts near pass rate 0.5)."""

    kind: Literal["uniform", "online"] = "uniform"  # uniform: the trainer's own shuffled order; online: this sampler
    store: str = ""  # difficulty store the prior reads (by sample id); "" = the samples' extra_info.difficulty tags
    prior: PriorConfig = field(default_factory=PriorConfig)
    band_low: float = 0.2  # target band of the predicted pass rate: a group drawn there likely differs within itself
    band_high: float = 0.8  # (0.2-0.8: a group of 8 there is all-equal with probability <= 17%)
    exploration: Literal["mean", "thompson"] = "mean"  # predicted pass rate: the posterior mean, or a posterior draw (Thompson)
    epsilon: float = 0.05  # each slot of a batch is, with this probability, drawn uniformly from the pool (revisits everything)
    skip_streak: int = 2  # a sample whose last k groups were all-equal (all pass or all fail) is skipped ...
    skip_explore: float = 0.1  # ... except with this probability per step (GRESO's exploration)
    discount: float = 0.5  # a sample's verdicts are multiplied by this before its next group joins: training moves its pass rate (1 = never forget)
    cooldown_steps: int = 2  # a sample is not drawn again within this many steps (0: may repeat in the next step)
    domain_key: str = "domain"  # extra_info field naming a sample's domain for quotas (domain, task, ...)
    domain_weights: dict[str, float] = field(default_factory=dict)  # per-domain share of every batch; {} = no quota
    mixture: str = ""  # a `gradus mix` config (YAML): its weights and group_by become domain_weights / domain_key
    write_back: str = ""  # tag: after training the posterior's verdicts join `store` as pass_rate@<tag> ("" = not written)

    def validate(self) -> None:
        if self.kind not in ("uniform", "online"):
            raise ConfigError(f"sampler.kind {self.kind!r} not in ('uniform', 'online')")
        if self.exploration not in ("mean", "thompson"):
            raise ConfigError(f"sampler.exploration {self.exploration!r} not in ('mean', 'thompson')")
        if not 0 <= self.band_low < self.band_high <= 1:
            raise ConfigError("sampler: need 0 <= band_low < band_high <= 1")
        if not 0 <= self.epsilon <= 1 or not 0 <= self.skip_explore <= 1 or not 0 < self.discount <= 1:
            raise ConfigError("sampler: need epsilon and skip_explore in [0, 1] and discount in (0, 1]")
        if self.skip_streak < 0 or self.cooldown_steps < 0:
            raise ConfigError("sampler: skip_streak and cooldown_steps must be >= 0 (skip_streak 0: never skip)")
        if any(w < 0 for w in self.domain_weights.values()) or (self.domain_weights and not sum(self.domain_weights.values()) > 0):
            raise ConfigError(f"sampler.domain_weights must be >= 0 with a positive sum, got {self.domain_weights}")
        if self.mixture and self.domain_weights:
            raise ConfigError("sampler: set mixture (a mix config) or domain_weights, not both")
        if self.write_back and not self.store:
            raise ConfigError("sampler.write_back needs sampler.store (the store the posterior joins)")
        if self.kind == "uniform" and (self.store or self.write_back):
            raise ConfigError("sampler.store / write_back apply to kind: online")
        self.prior.validate()
