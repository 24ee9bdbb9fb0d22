"""config: synth.* -- the synthetic verifiable corpus."""
from __future__ import annotations

from dataclasses import dataclass, field

from engine.config import ConfigError

FAMILIES = ("counting", "color", "grounding", "ocr", "chart", "spatial")


@dataclass
class SynthConfig:
    seed: int = 0
    image_size: int = 112  # square images; 112 px = 16 visual tokens for the tiny model
    families: list[str] = field(default_factory=lambda: list(FAMILIES))
    train_per_family: int = 500
    val_per_family: int = 50
    test_per_family: int = 100
    levels: list[int] = field(default_factory=lambda: [1, 2, 3])  # difficulty knob, drawn uniformly per sample
    prompt_suffix: str = " Put the final answer in \\boxed{}."  # the training template's answer instruction
    rows_per_shard: int = 512

    def validate(self) -> None:
        unknown = set(self.families) - set(FAMILIES)
        if unknown or not self.families:
            raise ConfigError(f"synth.families: unknown {sorted(unknown)}; known {FAMILIES}")
        if len(set(self.families)) != len(self.families):
            raise ConfigError(f"synth.families: duplicates in {self.families} (sample ids would collide)")
        if min(self.train_per_family, self.val_per_family, self.test_per_family) < 0:
            raise ConfigError("synth: per-family sizes must be >= 0")
        if not self.levels or not set(self.levels) <= {1, 2, 3} or len(set(self.levels)) != len(self.levels):
            raise ConfigError(f"synth.levels must be a non-empty subset of [1, 2, 3] without duplicates, got {self.levels}")
        if self.image_size < 56:
            raise ConfigError("synth.image_size must be >= 56")
        if self.rows_per_shard < 1:
            raise ConfigError("synth.rows_per_shard must be >= 1")

    def per_split(self) -> dict[str, int]:
        return {"train": self.train_per_family, "val": self.val_per_family, "test": self.test_per_family}
