"""The one generate-and-verify path (engine/generation/verified.py) on real generation (the tiny
random model, HF backend): every completion judged by its own sample's verifier, in request order,
seeded as PISM's clean draws; an engine failure or a verdict the verifier could not reach is an
error with a reason code, never a wrong answer."""
import io

import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from engine.config import to_dict
from engine.data.images import ImagePolicy
from engine.data.sample import ImageRef, Message, Sample
from engine.data.shards import write_shards
from engine.errors import error_detail
from engine.evaluation import evaluate_samples
from engine.generation.base import Generation, GenerationBackend, GenerationConfig
from engine.generation.factory import make_backend
from engine.generation.seeds import draw_seed
from engine.generation.verified import (ENGINE_ERROR, VERIFIER_ERROR, clean_requests, generate_and_verify,
                                        sample_and_verify)
from engine.pism import PismConfig
from engine.pism.scorer import draw_request
from engine.verifiers import VERIFIERS, VerifyResult, register_verifier, verify
from pipelines.generate import GenerateActor

PROMPT = "<image>How many shapes are there? Put the final answer in \\boxed{}."


def _png(width: int, height: int, color: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="PNG")
    return buf.getvalue()


def _sample(sid: str, answer: str = "3", verifier: str = "count", size: tuple[int, int] = (56, 56)) -> Sample:
    return Sample(sid, [ImageRef(_png(*size))], [Message("user", PROMPT)], answer, "counting", verifier)


def _items(samples):
    return [(s, s.load_images(ImagePolicy())) for s in samples]


@pytest.fixture(scope="module")
def backend(tiny_random_model):
    b = make_backend(GenerationConfig(backend="hf", model_path=str(tiny_random_model), temperature=0.7, max_new_tokens=8, device="cpu"))
    yield b
    b.close()


def test_draws_are_judged_in_order_with_pism_clean_seeds(backend):
    items = _items([_sample("a"), _sample("b", answer="2", verifier="numeric")])
    results = sample_and_verify(items, backend, n=3, seed=5)
    flat = backend.generate([r for s, imgs in items for r in clean_requests(s, imgs, 5, range(3))])
    assert [r.texts for r in results] == [[g.text for g in flat[:3]], [g.text for g in flat[3:]]]  # same draws, same order
    for (s, _), r in zip(items, results):
        assert r.error is None and len(r.verdicts) == 3
        assert r.verdicts == [verify(s.verifier, t, s.answer, s.verifier_params) for t in r.texts]  # each by its own verifier
        assert r.tokens == [g.num_tokens for g in r.generations] and all(t > 0 for t in r.tokens)
    s, images = items[0]
    pism = PismConfig(seed=5)
    for d, req in enumerate(clean_requests(s, images, 5, range(3))):
        assert req.seed == draw_seed(5, s.id, 0.0, d) == draw_request(pism, s, images, 0, d).seed


def test_an_engine_failure_is_an_error_never_a_wrong_answer(backend):
    # A valid image the processor refuses (aspect ratio above 200): the engine raises on this item only.
    items = _items([_sample("a"), _sample("wide", size=(300, 1)), _sample("c")])
    together = generate_and_verify([s for s, _ in items], [clean_requests(s, imgs, 0, [0]) for s, imgs in items], backend)
    assert [r.error for r in together] == [ENGINE_ERROR] * 3  # one engine call for the batch: all of it failed
    assert all(not r.generations and not r.verdicts for r in together) and "aspect ratio" in together[1].error_detail
    isolated = sample_and_verify(items, backend, n=2, seed=0)  # retried one by one: only the item that fails alone
    assert [r.error for r in isolated] == [None, ENGINE_ERROR, None]
    assert isolated[1].texts == [] and [len(r.texts) for r in isolated[::2]] == [2, 2]


BROKEN = "broken_plugin"


def _broken(output, truth, params):
    raise RuntimeError("plugin bug")


@pytest.fixture
def broken_verifier():
    """A project-registered verifier with a bug: it raises on every call."""
    register_verifier(BROKEN, _broken)
    yield BROKEN
    VERIFIERS.pop(BROKEN)


def test_a_verdict_the_verifier_cannot_reach_is_a_verifier_error(backend, broken_verifier):
    items = _items([_sample("broken", verifier=broken_verifier), _sample("ok")])
    bad, ok = sample_and_verify(items, backend, n=2, seed=0)
    assert bad.error == VERIFIER_ERROR and bad.error_detail == "error:RuntimeError: plugin bug"
    assert len(bad.texts) == 2  # the completions are kept for inspection
    assert ok.error is None and len(ok.texts) == 2


def test_generate_rows_with_a_verifier_error_are_errors_not_wrong_answers(tiny_random_model, broken_verifier, tmp_path):
    samples = [_sample("broken", verifier=broken_verifier), _sample("ok")]
    (path,) = write_shards(samples, tmp_path)
    gen = GenerationConfig(backend="hf", model_path=str(tiny_random_model), max_new_tokens=8, device="cpu")
    frame = GenerateActor(to_dict(gen), 0, "tiny", "h")(pq.read_table(path).to_pandas())
    rows = {r["id"]: r for r in frame.to_dict("records")}
    assert rows["broken"]["error"] == VERIFIER_ERROR and rows["broken"]["error_detail"] == "error:RuntimeError: plugin bug"
    assert pd.isna(rows["broken"]["passed"]) and isinstance(rows["broken"]["output"], str)  # kept, but not a wrong answer
    assert pd.isna(rows["ok"]["error"]) and rows["ok"]["passed"] in (True, False)


def test_evaluate_samples_leaves_unjudged_items_out_of_accuracy(backend, broken_verifier):
    samples = [_sample("broken", verifier=broken_verifier), _sample("ok"), _sample("wide", size=(300, 1))]
    report = evaluate_samples(backend, samples)
    assert [(e.id, e.error) for e in report.errors] == [("broken", VERIFIER_ERROR), ("wide", ENGINE_ERROR)]
    assert report.n == 1 and [i.id for i in report.items] == ["ok"] and report.per_family_n == {"counting": 1}


class _DropsOne(GenerationBackend):
    """Unit-scoped double (no model): a broken backend that answers one request too few."""

    def generate(self, requests):
        return [Generation("\\boxed{3}", 4) for _ in requests[1:]]


def test_a_short_answer_from_the_backend_is_an_engine_error_not_misaligned_verdicts():
    samples = [_sample("a"), _sample("b")]
    requests = [clean_requests(s, [], 0, [0]) for s in samples]
    results = generate_and_verify(samples, requests, _DropsOne())
    assert [r.error for r in results] == [ENGINE_ERROR, ENGINE_ERROR]
    assert "1 completions for 2 requests" in results[0].error_detail


def test_error_detail_and_crashed_verifier_reason():
    exc = ValueError("x" * 1000)
    assert error_detail(exc) == ("ValueError: " + "x" * 1000)[:500]
    assert error_detail(exc, limit=300) == ("ValueError: " + "x" * 1000)[:300]
    assert error_detail(exc, limit=None) == "ValueError: " + "x" * 1000
    crashed = VerifyResult.crashed(KeyError("k"))
    assert crashed.reason == "error:KeyError: 'k'" and crashed.infrastructure_failure and not crashed.passed
    assert VerifyResult.crashed(exc).reason == "error:ValueError: " + "x" * 120
