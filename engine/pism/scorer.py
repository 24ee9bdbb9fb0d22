"""Score samples with PISM on one generation backend, keeping the engine busy across samples.

Each round asks every unfinished sample for its next draw and sends all of them to the backend in
one call, so the engine batches requests from many samples (vLLM: continuous batching). A draw
is judged by the sample's own verifier (`passed`, so continuous verifiers are thresholded by
their params, e.g. IoU >= 0.5). Infrastructure failures (undecodable image, engine error, a
verifier that could not run) make the sample an error record, never a wrong answer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from PIL import Image

from engine.data.images import ImagePolicy
from engine.data.reasons import SampleError
from engine.data.sample import Sample
from engine.generation.base import GenerationBackend, GenerationRequest
from engine.pism.config import PismConfig
from engine.pism.masks import draw_seed, mask_image
from engine.pism.schedule import SampleSchedule
from engine.verifiers import verify_many

# Verifier reasons that mean "could not judge" because of the data or the infrastructure, not the model.
_INFRA_REASONS = ("bad_ground_truth", "error:", "worker_died")


@dataclass
class PismRecord:
    id: str
    task: str
    successes: list[int]  # per ratio: successful draws
    runs: list[int]  # per ratio: draws actually run
    lambda_star: float | None  # first ratio with Pc < tau; None when never failing
    bucket: str | None  # hard | mid | easy; None when unsolved or errored
    unsolved: bool
    generations: int
    tokens: int
    error: str | None = None
    error_detail: str | None = None
    draws: list[dict] = field(default_factory=list)  # per draw: ratio index, draw, passed, tokens (kept for audits)


def _is_infra(reason: str) -> bool:
    return reason.startswith(_INFRA_REASONS)


def score_samples(
    samples: Sequence[Sample],
    backend: GenerationBackend,
    cfg: PismConfig,
    policy: ImagePolicy | None = None,
    on_round: Callable[[int, int], None] | None = None,
) -> list[PismRecord]:
    """PISM records for `samples`, in input order. `on_round(round, requests)` reports progress."""
    policy = policy or ImagePolicy()
    records: list[PismRecord] = []
    active: list[tuple[Sample, list[Image.Image], SampleSchedule, PismRecord]] = []
    n = len(cfg.ratios)
    for s in samples:
        rec = PismRecord(s.id, s.task, [0] * n, [0] * n, None, None, False, 0, 0)
        records.append(rec)
        try:
            images = s.load_images(policy)
        except SampleError as err:
            rec.error, rec.error_detail = err.reason.value, err.detail
            continue
        active.append((s, images, SampleSchedule(cfg), rec))
    schedules = [(rec, sched) for _, _, sched, rec in active]

    round_no = 0
    while active:
        wave = []
        for item in active:
            nxt = item[2].next_draw()
            if nxt is not None:
                wave.append((item, *nxt))
        if not wave:
            break
        requests = []
        for (s, images, _, _), i, k in wave:
            ratio = cfg.ratios[i]
            seed = draw_seed(cfg.seed, s.id, ratio, k)
            masked = [mask_image(img, ratio, cfg.mask_mode, seed + j, patch=cfg.patch_size,
                                 min_pixels=cfg.patch_min_pixels, max_pixels=cfg.patch_max_pixels) for j, img in enumerate(images)]
            requests.append(GenerationRequest(s.prompt_messages, masked, seed=seed))
        try:
            gens = backend.generate(requests)
        except Exception as exc:  # the engine failed: these samples are errors, not wrong answers
            for (_, _, sched, rec), _, _ in wave:
                rec.error, rec.error_detail = "engine_error", f"{type(exc).__name__}: {exc}"[:500]
            gens = None
        if gens is not None:
            verdicts = verify_many([(s.verifier, g.text, s.answer, s.verifier_params) for ((s, _, _, _), _, _), g in zip(wave, gens)])
            for ((s, _, sched, rec), i, k), g, v in zip(wave, gens, verdicts):
                if rec.error:
                    continue
                if _is_infra(v.reason):
                    rec.error, rec.error_detail = "verifier_error", v.reason[:500]
                    continue
                sched.record(i, v.passed)
                rec.tokens += g.num_tokens
                rec.draws.append({"ratio_index": i, "draw": k, "passed": v.passed, "tokens": g.num_tokens})
        round_no += 1
        if on_round:
            on_round(round_no, len(requests))
        active = [item for item in active if not item[3].error and not item[2].done]

    for rec, sched in schedules:
        rec.successes, rec.runs, rec.generations = list(sched.successes), list(sched.runs), sched.generations
        if not rec.error:
            rec.lambda_star, rec.unsolved, rec.bucket = sched.lambda_star, sched.unsolved, sched.bucket
    return records
