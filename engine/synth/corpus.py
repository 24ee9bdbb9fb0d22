"""Render splits of the synthetic corpus as canonical samples and write them as shards."""
from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

from engine import __version__
from engine.config import config_hash, to_dict
from engine.data.images import encode_png
from engine.data.sample import IMAGE_PLACEHOLDER, ImageRef, Message, Sample
from engine.data.shards import write_shards
from engine.synth.config import SynthConfig
from engine.synth.families import GENERATORS

GENERATOR_VERSION = "3"  # bump whenever rendering or questions change: it keys every cache


def sample_rng(seed: int, family: str, split: str, index: int) -> np.random.Generator:
    """Per-sample RNG from a stable hash: any sample can be regenerated alone, in any order."""
    digest = hashlib.sha256(f"gradus-synth|{seed}|{family}|{split}|{index}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def make_sample(cfg: SynthConfig, family: str, split: str, index: int) -> Sample:
    rng = sample_rng(cfg.seed, family, split, index)
    level = int(cfg.levels[int(rng.integers(len(cfg.levels)))])
    item = GENERATORS[family](rng, cfg.image_size, level)
    return Sample(
        id=f"synth-{family}-{split}-{index:06d}",
        images=[ImageRef(bytes=encode_png(item.image))],
        messages=[Message("user", IMAGE_PLACEHOLDER + item.question + cfg.prompt_suffix)],
        answer=item.answer,
        task=family,
        verifier=item.verifier,
        verifier_params=item.params,
        domain=item.domain,
        source="gradus-synth",
        split=split,
        meta={"level": level, "family": family, "seed": cfg.seed, "index": index, "generator_version": GENERATOR_VERSION, **item.facts},
    )


def generate_split(cfg: SynthConfig, split: str) -> list[Sample]:
    cfg.validate()
    n = cfg.per_split()[split]
    return [make_sample(cfg, family, split, i) for family in cfg.families for i in range(n)]


def build_corpus(cfg: SynthConfig, out_dir: str | Path) -> dict:
    """Write out_dir/{train,val,test}/part-*.parquet and out_dir/manifest.json; returns the manifest."""
    from tqdm import tqdm

    cfg.validate()
    started = time.time()
    out = Path(out_dir)
    counts: dict[str, dict] = {}
    for split in ("train", "val", "test"):
        n = cfg.per_split()[split]
        samples = [
            make_sample(cfg, family, split, i)
            for family in cfg.families
            for i in tqdm(range(n), desc=f"synth {split}/{family}", leave=False, disable=n < 200)
        ]
        write_shards(samples, out / split, rows_per_shard=cfg.rows_per_shard)
        counts[split] = {
            "total": len(samples),
            "per_family": dict(Counter(s.task for s in samples)),
            "per_level": {str(k): v for k, v in sorted(Counter(s.meta["level"] for s in samples).items())},
        }
    manifest = {
        "config": to_dict(cfg),
        "config_hash": config_hash(cfg),
        "seed": cfg.seed,
        "gradus_version": __version__,
        "generator_version": GENERATOR_VERSION,
        "counts": counts,
        "wall_s": round(time.time() - started, 2),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest
