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
from engine.generation.base import GenerationBackend
from engine.generation.verified import clean_requests, generate_and_verify


@dataclass
class Solved:
    response: str | None = None  # the first verified-correct answer; None: unsolved (or error)
    generations: int = 0
    tokens: int = 0
    error: str | None = None
    error_detail: str | None = None


def solve(items: Sequence[tuple[Sample, Sequence[Image.Image]]], backend: GenerationBackend, draws: int, seed: int) -> list[Solved]:
    """One `Solved` per (sample, images), in order."""
    results = [Solved() for _ in items]
    open_ = [i for i, (sample, _) in enumerate(items) if _judgeable(sample, results[i])]
    for draw in range(draws):
        if not open_:
            break
        verified = generate_and_verify([items[i][0] for i in open_], [clean_requests(*items[i], seed, [draw]) for i in open_], backend)
        still = []
        for i, v in zip(open_, verified):
            res = results[i]
            res.generations += len(v.generations)
            res.tokens += sum(v.tokens)
            if v.error:  # the engine failed (every open sample at once) or the verifier could not judge
                res.error, res.error_detail = v.error, v.error_detail
            elif v.passed[0]:
                res.response = v.texts[0]
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
