"""SFT on Ray Train with DeepSpeed ZeRO on one GPU worker (skipped without CUDA; tests/gpu/conftest.py).

The CPU suite only checks the DeepSpeed config against DeepSpeed's own parser
(tests/cpu/rl/test_curriculum_on_cpu.py); this runs the training path itself: deepspeed.initialize
inside a Ray Train worker, engine.backward/step with the loop's parameter groups and schedule, and
the final HF folder (ZeRO-3: weights gathered with _zero3_consolidated_16bit_state_dict).
"""
from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    """A small synthetic corpus and a randomly initialised tiny model whose tokenizer knows it."""
    from engine.config import from_dict
    from engine.paths import cache_root
    from rl.warmstart import WarmstartConfig, build_initial_model, ensure_corpus

    root = tmp_path_factory.mktemp("ds")
    cfg = from_dict(WarmstartConfig, {"synth": {"train_per_family": 8, "val_per_family": 1, "test_per_family": 1},
                                      "model": {"vocab_size": 400}, "cache_dir": str(root / "cache")})
    corpus = ensure_corpus(cfg.synth, cache_root(cfg.cache_dir))
    model = build_initial_model(cfg, root / "model")
    return corpus, model, root


@pytest.mark.parametrize("zero_stage", [2, 3])
def test_sft_deepspeed_zero_on_gpu(tiny_setup, zero_stage):
    pytest.importorskip("deepspeed")
    import torch
    from transformers import AutoModelForImageTextToText

    from engine.ray_session import init_ray
    from rl.sft.config import SFTConfig, SFTDeepSpeed
    from rl.sft.ray_train import run_sft

    corpus, model, root = tiny_setup
    init_ray(num_gpus=1)
    out = root / f"zero{zero_stage}"
    cfg = SFTConfig(model_path=str(model), train_data=str(corpus / "train"), output_dir=str(out), epochs=1, max_steps=3,
                    batch_size=4, lr=1e-3, warmup_steps=0, log_every=1, num_workers=1, use_gpu=True,
                    deepspeed=SFTDeepSpeed(enabled=True, zero_stage=zero_stage, dtype="bfloat16"))
    summary = run_sft(cfg)
    assert summary["parallelism"] == f"deepspeed zero-{zero_stage}" and summary["steps"] == 3
    assert summary["deepspeed_config"]["zero_optimization"]["stage"] == zero_stage
    assert all(torch.isfinite(torch.tensor(p["loss"])) for p in summary["loss_curve"])
    trained = AutoModelForImageTextToText.from_pretrained(out, local_files_only=True)
    base = AutoModelForImageTextToText.from_pretrained(model, local_files_only=True)
    t, b = dict(trained.named_parameters()), dict(base.named_parameters())
    assert set(t) == set(b) and any(not torch.equal(t[k].float(), b[k].float()) for k in b)  # full weights, and they moved
    assert json.loads((out / "gradus_model.json").read_text())["stage"] == "sft"
