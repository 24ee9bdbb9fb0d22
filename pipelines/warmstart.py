"""The embedded default as recipes: `gradus data synth` (the synthetic corpus), `gradus model
build-tiny` (the random tiny Qwen2.5-VL) and `gradus model warmstart` (built and SFT-ed, cached).

The corpus and the warm-start are cached by their config's hash; where a recipe writes (`out`) says
where, not what, so the recipe configs below add it on top of the library configs and hand the
library its own config, leaving the cache keys as they were.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TypeVar

from engine.config import ConfigError
from engine.paths import cache_root
from engine.synth.config import SynthConfig
from rl.warmstart import WarmstartConfig

T = TypeVar("T")


@dataclass
class SynthJobConfig(SynthConfig):
    out: str = ""  # output directory (default: the gradus cache, keyed by the corpus config's hash)


@dataclass
class BuildTinyConfig(WarmstartConfig):
    out: str = ""  # directory for the HF model folder (required)

    def require_paths(self) -> None:
        if not self.out:
            raise ConfigError("model build-tiny: out is required (--out DIR)")


def library_config(cfg: T, cls: type[T]) -> T:
    """`cfg` as the library's `cls`: the recipe's own fields (`out`) dropped, so hashes stay the library's."""
    return cls(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cls)})


def run_synth(cfg: SynthJobConfig) -> dict:
    from engine.synth import build_corpus
    from rl.warmstart import ensure_corpus

    corpus = library_config(cfg, SynthConfig)
    if not cfg.out:
        return {"out": str(ensure_corpus(corpus, cache_root()))}
    return {"out": cfg.out, **build_corpus(corpus, cfg.out)}


def run_build_tiny(cfg: BuildTinyConfig) -> dict:
    from rl.warmstart import build_initial_model

    cfg.require_paths()
    path = build_initial_model(library_config(cfg, WarmstartConfig), cfg.out)
    return {"model_path": str(path), "model_id": cfg.model.model_id}


def run_warmstart(cfg: WarmstartConfig) -> dict:
    from rl.warmstart import ensure_warmstart, read_record

    path = ensure_warmstart(cfg)
    record = read_record(path)
    return {"model_path": str(path), **{k: record[k] for k in ("overall_acc", "per_family", "accepted", "acceptance", "wall_s")}}
