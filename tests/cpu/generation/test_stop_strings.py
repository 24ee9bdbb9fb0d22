"""Stop strings end a completion once its answer is complete and stay in the text (verifiers need `</answer>`)."""
from PIL import Image

from engine.data.sample import Message
from engine.generation.base import GenerationConfig, GenerationRequest
from engine.generation.factory import make_backend


def test_hf_stop_string_cuts_the_greedy_completion(tiny_random_model):
    request = GenerationRequest([Message("user", "<image>How many shapes are there?")], [Image.new("RGB", (112, 112), (20, 200, 20))])
    cfg = dict(backend="hf", model_path=str(tiny_random_model), max_new_tokens=24, device="cpu")
    full = make_backend(GenerationConfig(**cfg)).generate([request])[0]
    assert len(full.text) > 8
    stop = full.text[4:7]
    cut = make_backend(GenerationConfig(**cfg, stop=[stop])).generate([request])[0]
    end = full.text.find(stop) + len(stop)
    assert cut.text == full.text[:end] and cut.finish_reason == "stop"
    assert cut.num_tokens < full.num_tokens
