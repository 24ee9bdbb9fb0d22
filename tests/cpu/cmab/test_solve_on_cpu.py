"""Generate-and-verify for samples without a PISM answer, on the warm tiny model through HF
(real generation): the response it keeps verifies, it stops at the first verified draw, and its
draw seeds are PISM's clean-image seeds."""
import pytest

from engine.cmab.solve import solve
from engine.data.images import ImagePolicy
from engine.generation.base import GenerationConfig
from engine.generation.hf_backend import HFBackend
from engine.generation.verified import clean_requests
from engine.pism import PismConfig
from engine.pism.scorer import draw_request
from engine.verifiers import verify

pytestmark = pytest.mark.slow


def test_solve_keeps_the_first_verified_draw(warm_model, samples):
    backend = HFBackend(GenerationConfig(backend="hf", model_path=str(warm_model), temperature=0.7, max_new_tokens=24, device="cpu"))
    items = [(s, s.load_images(ImagePolicy())) for s in samples]
    results = solve(items, backend, draws=3, seed=0)
    assert len(results) == len(samples) and all(r.error is None for r in results)
    for (s, _), r in zip(items, results):
        assert 1 <= r.generations <= 3 and r.tokens >= r.generations
        if r.response is None:
            assert r.generations == 3  # unsolved only after every draw failed
        else:
            assert verify(s.verifier, r.response, s.answer, s.verifier_params).passed
    assert any(r.response is not None for r in results)


def test_fallback_draws_are_pism_clean_image_draws(samples):
    s = samples[0]
    images = s.load_images(ImagePolicy())
    pism = PismConfig(seed=7)
    for k in range(3):
        (ours,), theirs = clean_requests(s, images, 7, [k]), draw_request(pism, s, images, 0, k)
        assert ours.seed == theirs.seed and ours.messages == theirs.messages
        assert [i.tobytes() for i in ours.images] == [i.tobytes() for i in theirs.images]  # ratio 0: unmasked
