"""HF backend on CUDA agrees with the CPU run of the same tiny model (greedy)."""
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
