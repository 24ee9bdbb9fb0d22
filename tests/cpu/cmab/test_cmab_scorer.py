"""CmabScorer on the warm-started tiny model (real forwards): a verified response gets rho-bar,
bucket and spans; no response means unsolved; a corrupt image is an error with its reason code."""
import pytest

from engine.cmab import CmabConfig
from engine.cmab.scorer import CmabScorer
from engine.data.response import format_response
from engine.data.sample import ImageRef
from engine.verifiers import verify


@pytest.mark.parametrize("mode", ["paper", "code"])
def test_verified_responses_get_scores(warm_model, samples, mode):
    cfg = CmabConfig(mode=mode)
    scorer = CmabScorer(str(warm_model), cfg)
    for s in samples:
        response = format_response(s.answer)  # the training template's answer: verified correct
        assert verify(s.verifier, response, s.answer, s.verifier_params).passed
        rec = scorer.score(s, response, source="test")
        assert rec.error is None and not rec.unsolved, rec
        assert rec.rho_bar > 0 and rec.bucket in {"easy", "mid", "hard"}
        assert len(rec.layer_profile) == scorer.model.config.text_config.num_hidden_layers
        assert rec.image_tokens == 16 and len(rec.image_spans) == 1 and rec.response_tokens >= 2


def test_unsolved_and_errors_are_not_scores(warm_model, samples):
    scorer = CmabScorer(str(warm_model), CmabConfig())
    unsolved = scorer.score(samples[0], None)
    assert unsolved.unsolved and unsolved.bucket is None and unsolved.rho_bar is None and unsolved.error is None
    broken = samples[1].__class__(**{**samples[1].__dict__, "images": [ImageRef(b"not an image", None)]})
    rec = scorer.score(broken, "\\boxed{1}")
    assert rec.error == "image_corrupt" and rec.rho_bar is None and not rec.unsolved
