"""The difficulty-aware sampler: each GRPO step's prompts chosen from the store's prior plus live pass rates."""
from rl.sampler.config import PriorConfig, SamplerConfig
from rl.sampler.core import OnlineDifficultySampler, informative_probability
from rl.sampler.prior import build_sampler

__all__ = ["OnlineDifficultySampler", "PriorConfig", "SamplerConfig", "build_sampler", "informative_probability"]
