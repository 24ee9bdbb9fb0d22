"""rho-bar definitions on hand-made attention masses (unit scope: no model; the masses are chosen
so the expected numbers can be worked out by hand)."""
import math

import pytest
import torch

from engine.cmab import CmabBuckets, CmabConfig, LayerMasses, Spans, bucket_of, code_rho, paper_rho
from engine.config import ConfigError


def _masses(image_by_layer, text_by_layer, pretext=0.1, heads=2, tokens=2):
    return {l: LayerMasses(torch.full((heads, tokens), img), torch.full((heads, tokens), txt), torch.full((heads, tokens), pretext))
            for l, (img, txt) in enumerate(zip(image_by_layer, text_by_layer))}


def test_paper_rho_is_geometric_mean_over_inner_layers():
    # layers 0 and 3 are left out; inner ratios 0.5 and 2.0 -> geometric mean 1.0
    m = _masses([9.0, 0.2, 0.4, 9.0], [1.0, 0.4, 0.2, 1.0])
    r = paper_rho(m, CmabConfig(eps=0.0))
    assert r.rho_bar == pytest.approx(1.0) and r.per_token == pytest.approx([1.0, 1.0])
    assert r.layer_profile == pytest.approx([9.0, 0.5, 2.0, 9.0])
    assert paper_rho(m, CmabConfig(eps=0.0, skip_first_last=False)).rho_bar == pytest.approx(math.sqrt(math.sqrt(9 * 9)))


def test_code_rho_uses_one_layer_and_per_token_densities():
    spans = Spans(image=torch.tensor([False, False, True, True, True, True, False]), prompt_len=7, response_len=2)
    m = _masses([0.1, 0.8, 0.1, 0.1], [0.5] * 4, pretext=0.2)
    cfg = CmabConfig(mode="code", code_layer=1)
    # image density 0.8 / 4 tokens = 0.2; pre-image text density 0.2 / 2 tokens = 0.1
    assert code_rho(m, spans, cfg).rho_bar == pytest.approx(2.0)
    assert CmabConfig(code_layer=0.714).layer_index(28) == 20  # the reference's layer 20 of 28
    with pytest.raises(ConfigError):
        CmabConfig(code_layer=40).layer_index(28)


def test_buckets_follow_the_paper_bands():
    b = CmabBuckets()
    assert [bucket_of(x, b) for x in (0.05, 0.1, 0.39, 0.4, 1.0, 1.6, 1.61, 1.9, 1.91)] == \
        ["easy", "mid", "mid", "hard", "hard", "hard", "mid", "mid", "easy"]
    with pytest.raises(ConfigError):
        CmabConfig(buckets=CmabBuckets(hard_low=2.0)).validate()
