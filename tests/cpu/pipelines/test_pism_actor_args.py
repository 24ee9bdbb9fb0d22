"""How many blocks one PISM actor scores at once: vLLM actors take `concurrent_blocks` (Ray's
max_concurrency, so a second block's samples share the engine while the first finishes); HF actors
score a batch in blocking rounds and get none (concurrent blocks would only queue behind it)."""
from pathlib import Path

import pytest

from engine.config import ConfigError, load_config
from pipelines.pism import PismJobConfig

REPO = Path(__file__).resolve().parents[3]


def _job(*overrides):
    return load_config(PismJobConfig, REPO / "configs" / "pism" / "tiny.yaml", ["input=in", "output=out", *overrides])


def test_vllm_actor_scores_concurrent_blocks():
    assert _job().actor_args()["max_concurrency"] == 2  # the shipped config
    assert _job("concurrent_blocks=3").actor_args()["max_concurrency"] == 3


def test_hf_actor_scores_one_block_at_a_time():
    assert "max_concurrency" not in _job("generation.backend=hf").actor_args()


def test_concurrent_blocks_must_be_positive():
    with pytest.raises(ConfigError, match="concurrent_blocks"):
        _job("concurrent_blocks=0").require_paths()
