"""HF sampling with per-request seeds: a draw is the same alone or in any batch (PISM's hf resume and
batching rely on it), and the sampler draws from softmax(logits / T) restricted to top-p."""
import numpy as np
import torch
from PIL import Image

from engine.data.sample import Message
from engine.generation.base import GenerationConfig, GenerationRequest
from engine.generation.factory import make_backend
from engine.generation.hf_backend import PerRequestSampler


def _requests(n):
    rng = np.random.default_rng(0)
    prompts = ["<image>How many shapes are there? Put the final answer in \\boxed{}.", "<image>What color is the circle?"]
    return [GenerationRequest([Message("user", prompts[i % 2])], [Image.fromarray(rng.integers(0, 255, (112, 112 + 28 * (i % 3), 3), dtype=np.uint8))],
                              seed=1000 + i) for i in range(n)]


def test_seeded_hf_draw_does_not_depend_on_its_batch(tiny_random_model):
    backend = make_backend(GenerationConfig(backend="hf", model_path=str(tiny_random_model), temperature=0.7, max_new_tokens=12,
                                            device="cpu", hf_batch_size=64))
    reqs = _requests(12)  # two prompts, three image sizes: rows are left-padded differently in each batch
    together = [g.text for g in backend.generate(reqs)]
    reversed_batch = [g.text for g in backend.generate(reqs[::-1])][::-1]
    alone = [backend.generate([r])[0].text for r in reqs[:4]]
    assert together == reversed_batch
    assert alone == together[:4]
    assert len(set(together)) > 1  # sampling is on: the seeds, not greedy decoding, make runs agree
    reseeded = [GenerationRequest(r.messages, r.images, seed=r.seed + 1) for r in reqs]
    assert [g.text for g in backend.generate(reseeded)] != together


def test_sampler_frequencies_follow_tempered_top_p_softmax():
    # Unit-scoped: the sampler on fixed logits (no model), 4000 seeded rows at once.
    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0])
    rows = 4000
    sampler = PerRequestSampler(range(rows), temperature=0.7, top_p=0.9, device="cpu")
    picks = sampler(None, logits.repeat(rows, 1)).argmax(dim=-1)
    probs = (logits / 0.7).softmax(-1)
    keep = (probs.cumsum(-1) - probs) < 0.9  # top-p set: tokens whose preceding mass is below 0.9
    expected = torch.where(keep, probs, 0.0) / probs[keep].sum()
    observed = torch.bincount(picks, minlength=5).float() / rows
    assert observed[~keep].sum() == 0
    assert torch.allclose(observed, expected, atol=0.03), (observed, expected)
    again = PerRequestSampler(range(rows), temperature=0.7, top_p=0.9, device="cpu")(None, logits.repeat(rows, 1)).argmax(dim=-1)
    assert torch.equal(picks, again)
