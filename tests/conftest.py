"""Session-scoped fixtures: one Ray session, one embedded default model, built once per run.

Engines are expensive here (Ray ~9 s, vLLM ~35 s, torch imports ~8 s per process), so every
real-engine test shares these instead of starting its own.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("WANDB_MODE", "offline")


@pytest.fixture(scope="session")
def ray_session():
    import ray

    from engine.ray_session import init_ray

    # address="local": a fresh cluster even when a `ray start` head (a loopback or simulated-cluster
    # test's) left /tmp/ray/ray_current_cluster behind, which a bare ray.init() would join
    init_ray(num_cpus=2, log_to_driver=False, address="local")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def warmstart_config():
    from engine.config import load_config
    from rl.warmstart import WarmstartConfig

    return load_config(WarmstartConfig, REPO / "configs" / "warmstart" / "tiny.yaml")


@pytest.fixture(scope="session")
def warm_model(ray_session, warmstart_config) -> Path:
    """The real embedded default: synthetic corpus -> tiny Qwen2.5-VL -> Ray Train SFT (cached)."""
    from rl.warmstart import ensure_warmstart

    return ensure_warmstart(warmstart_config)


@pytest.fixture(scope="session")
def warm_corpus(warm_model, warmstart_config) -> Path:
    from engine.paths import cache_root
    from rl.warmstart import ensure_corpus

    return ensure_corpus(warmstart_config.synth, cache_root(warmstart_config.cache_dir))


@pytest.fixture(scope="session")
def tiny_random_model(tmp_path_factory) -> Path:
    """A randomly initialised tiny model (seconds to build) for tests that need any real model."""
    from engine.model.tiny import TinyModelConfig, build_tiny_model

    texts = ["How many shapes are there? Put the final answer in \\boxed{}.", "\\boxed{3}", "What color is the circle?"] * 20
    return build_tiny_model(TinyModelConfig(vocab_size=400), texts, tmp_path_factory.mktemp("tiny") / "model")
