"""PISM on the warm-started tiny model through a real engine (HF transformers, greedy):
buckets equal a brute-force evaluation of every (ratio, draw), and adaptive == reference."""
import pytest

from engine.data.shards import iter_samples
from engine.generation.base import GenerationConfig, make_backend
from engine.pism import PismConfig, bucket_of, score_samples
from engine.config import from_dict
from engine.verifiers import verify

RATIOS = [0.0, 0.3, 0.6, 0.9]
DRAWS = 3


@pytest.fixture(scope="module")
def samples(warm_corpus):
    picked, per_task = [], {}
    for s in iter_samples(warm_corpus / "test"):
        if per_task.get(s.task, 0) < 2:
            picked.append(s)
            per_task[s.task] = per_task.get(s.task, 0) + 1
    return picked


@pytest.fixture(scope="module")
def backend(warm_model):
    b = make_backend(GenerationConfig(backend="hf", model_path=str(warm_model), max_new_tokens=24, device="cpu", hf_batch_size=64))
    yield b
    b.close()


def _cfg(schedule, mode="rect"):
    return from_dict(PismConfig, {"ratios": RATIOS, "draws": DRAWS, "tau": 0.3, "schedule": schedule, "mask_mode": mode, "seed": 1})


def test_adaptive_equals_reference_equals_brute_force(samples, backend):
    adaptive = score_samples(samples, backend, _cfg("adaptive"))
    reference = score_samples(samples, backend, _cfg("reference"))
    # Brute force: every draw of every ratio, judged independently of any schedule.
    brute_cfg = _cfg("reference")
    for a, r, s in zip(adaptive, reference, samples):
        assert a.error is None and r.error is None
        full = [[d["passed"] for d in r.draws if d["ratio_index"] == i] for i in range(len(RATIOS))]
        assert (a.lambda_star, a.bucket, a.unsolved) == (r.lambda_star, r.bucket, r.unsolved), (s.id, a, r)
        passes = [any(row) for row in full]  # tau 0.3 of 3 draws: one success passes
        lam = next((RATIOS[i] for i, ok in enumerate(passes) if not ok), None)
        assert a.bucket == bucket_of(lam, not passes[0], brute_cfg.buckets)
        assert a.generations <= r.generations
        # the clean-image answer CMAB reuses: present exactly when solved, and it verifies
        assert (a.clean_response is not None) == passes[0]
        if a.clean_response is not None:
            assert verify(s.verifier, a.clean_response, s.answer, s.verifier_params).passed
    assert sum(a.generations for a in adaptive) < sum(r.generations for r in reference)
    assert {a.bucket for a in adaptive} - {None}, "the warm model should solve some samples on clean images"
