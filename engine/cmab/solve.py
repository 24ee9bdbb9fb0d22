"""Generate-and-verify: a verified-correct response for samples PISM gave no answer for.

Rounds of one seeded draw per unresolved sample go to the backend in one call (the engine
batches across samples), up to `draws` per sample; the first answer its verifier passes is the
response, and a sample with none is unsolved. Draw k carries PISM's seed for the unmasked image's
draw k, so with the same generation settings this finds the answer PISM's clean pass would have
(vLLM honours per-request seeds exactly). An engine failure or a verifier that could not judge
makes the sample an error, never unsolved.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from PIL import Image

from engine.data.reasons import SampleError
from engine.data.sample import Sample, check_verifier
from engine.generation.base import GenerationBackend, GenerationRequest
from engine.pism.masks import draw_seed
from engine.verifiers import verify_many


@dataclass
class Solved:
    response: str | None = None  # the first verified-correct answer; None: unsolved (or error)
    generations: int = 0
    tokens: int = 0
    error: str | None = None
    error_detail: str | None = None


def clean_request(sample: Sample, images: Sequence[Image.Image], seed: int, draw: int) -> GenerationRequest:
    """Draw `draw` on the unmasked image, seeded as PISM's ratio-0 draw of the same index."""
    return GenerationRequest(sample.prompt_messages, list(images), seed=draw_seed(seed, sample.id, 0.0, draw))


def solve(items: Sequence[tuple[Sample, Sequence[Image.Image]]], backend: GenerationBackend, draws: int, seed: int) -> list[Solved]:
    """One `Solved` per (sample, images), in order."""
    results = [Solved() for _ in items]
    open_ = [i for i, (sample, _) in enumerate(items) if _judgeable(sample, results[i])]
    for draw in range(draws):
        if not open_:
            break
        try:
            gens = backend.generate([clean_request(*items[i], seed, draw) for i in open_])
        except Exception as exc:  # the engine failed: these samples are errors, not wrong answers
            for i in open_:
                results[i].error, results[i].error_detail = "engine_error", f"{type(exc).__name__}: {exc}"[:500]
            break
        verdicts = verify_many([(items[i][0].verifier, g.text, items[i][0].answer, items[i][0].verifier_params) for i, g in zip(open_, gens)])
        still = []
        for i, gen, verdict in zip(open_, gens, verdicts):
            res = results[i]
            res.generations += 1
            res.tokens += gen.num_tokens
            if verdict.infrastructure_failure:
                res.error, res.error_detail = "verifier_error", verdict.reason[:500]
            elif verdict.passed:
                res.response = gen.text
            else:
                still.append(i)
        open_ = still
    return results


def _judgeable(sample: Sample, result: Solved) -> bool:
    """False (and the result an error) when no verifier of that name exists: nothing to generate for."""
    try:
        check_verifier(sample.verifier)
    except SampleError as err:
        result.error, result.error_detail = err.reason.value, err.detail
        return False
    return True
