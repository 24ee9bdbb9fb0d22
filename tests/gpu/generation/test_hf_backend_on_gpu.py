"""HF backend on CUDA agrees with the CPU run of the same tiny model: greedy, and seeded sampling
(the per-request noise is a counter hash, the same numbers on both devices)."""
import numpy as np
from PIL import Image

from engine.data.sample import Message
from engine.generation.base import GenerationConfig, GenerationRequest
from engine.generation.hf_backend import HFBackend


def test_cuda_generation_matches_cpu(tiny_random_model):
    req = [GenerationRequest([Message("user", "<image>What color is the circle?")], [Image.new("RGB", (112, 112), c)]) for c in ("red", "blue")]
    texts = {}
    for device in ("cpu", "cuda"):
        cfg = GenerationConfig(backend="hf", model_path=str(tiny_random_model), max_new_tokens=6, device=device)
        texts[device] = [g.text for g in HFBackend(cfg).generate(req)]
    assert texts["cuda"] == texts["cpu"]


def test_cuda_seeded_sampling_matches_cpu(tiny_random_model):
    rng = np.random.default_rng(0)
    req = [GenerationRequest([Message("user", "<image>How many shapes are there?")], [Image.fromarray(rng.integers(0, 255, (112, 112, 3), dtype=np.uint8))],
                             seed=10 * i + 1) for i in range(8)]
    texts = {}
    for device in ("cpu", "cuda"):
        cfg = GenerationConfig(backend="hf", model_path=str(tiny_random_model), temperature=0.7, max_new_tokens=8, device=device)
        texts[device] = [g.text for g in HFBackend(cfg).generate(req)]
    assert len(set(texts["cpu"])) > 1
    assert texts["cuda"] == texts["cpu"]
