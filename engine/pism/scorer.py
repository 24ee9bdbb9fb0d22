"""Score samples with PISM on one generation backend, keeping the engine busy across samples.

Requests from many samples are in flight at once. On a streaming backend (vLLM) a sample's next
draw is submitted as soon as its previous one is judged (`PismStream`, which several concurrent
callers can share); on others (HF) each round sends one draw per unfinished sample in one
batched call. A draw
is judged by the sample's own verifier (`passed`, so continuous verifiers are thresholded by
their params, e.g. IoU >= 0.5). Infrastructure failures (undecodable image, engine error, a
verifier that could not run) make the sample an error record, never a wrong answer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from collections import deque
from typing import Sequence

from PIL import Image

from engine.data.images import ImagePolicy
from engine.data.reasons import SampleError
from engine.data.sample import Sample, check_verifier
from engine.generation.base import Generation, GenerationBackend, GenerationRequest
from engine.generation.seeds import draw_seed
from engine.generation.verified import engine_failure, generate_and_verify, judge, verdict_failure
from engine.vision_grid import VisionGrid
from engine.pism.config import PismConfig
from engine.pism.masks import mask_image
from engine.pism.schedule import SampleSchedule


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
    clean_response: str | None = None  # first verified-correct answer on the unmasked image (CMAB reuses it)
    prompt_tokens: int = 0  # summed over the draws the schedule used: prompt lengths (image tokens included)
    prefilled_tokens: int = 0  # of those, the ones the engine computed (the rest came from its prefix cache)
    speculative_generations: int = 0  # draws run ahead (pism.speculate_after_misses) that the schedule did not need


def score_samples(
    samples: Sequence[Sample],
    backend: GenerationBackend,
    cfg: PismConfig,
    policy: ImagePolicy | None = None,
) -> list[PismRecord]:
    """PISM records for `samples`, in input order.

    Streaming backends (vLLM): each sample's next draw is submitted the moment its last one is
    judged, up to `cfg.max_in_flight` draws at once, so one slow generation never holds the
    others back. Other backends (HF): rounds of one draw per unfinished sample. Draws are seeded,
    so both paths give the same records.
    """
    if backend.streaming:
        stream = PismStream(backend, cfg)
        records, active = _prepare(samples, cfg, policy)
        stream.add(active)
        while stream.busy(active):
            stream.step()
        return stream.finish(records, active)
    records, active = _prepare(samples, cfg, policy)
    _rounds(active, backend, cfg, _grid(backend, cfg))
    return _finish(records, active)


def _grid(backend: GenerationBackend, cfg: PismConfig) -> VisionGrid | None:
    """The engine's own resize grid, which `patch` masks follow (None for other mask modes)."""
    return backend.vision_grid() if cfg.mask_mode == "patch" else None


def _prepare(samples: Sequence[Sample], cfg: PismConfig, policy: ImagePolicy | None) -> tuple[list[PismRecord], list["_Item"]]:
    """A blank record per sample (in input order) and the samples that can be scored, images decoded."""
    policy = policy or ImagePolicy()
    records: list[PismRecord] = []
    active: list[_Item] = []
    n = len(cfg.ratios)
    for s in samples:
        rec = PismRecord(s.id, s.task, [0] * n, [0] * n, None, None, False, 0, 0)
        records.append(rec)
        try:
            check_verifier(s.verifier)  # a name verify() cannot look up: an error record, not a crash of the batch
            images = s.load_images(policy)
        except SampleError as err:
            rec.error, rec.error_detail = err.reason.value, err.detail
            continue
        active.append((s, images, SampleSchedule(cfg), rec))
    return records, active


def _finish(records: list[PismRecord], active: list["_Item"]) -> list[PismRecord]:
    """Copy each schedule's counts and verdict into its record."""
    for _, _, sched, rec in active:
        rec.successes, rec.runs, rec.generations = list(sched.successes), list(sched.runs), sched.generations
        if not rec.error:
            rec.lambda_star, rec.unsolved, rec.bucket = sched.lambda_star, sched.unsolved, sched.bucket
    return records


_Item = tuple[Sample, list[Image.Image], SampleSchedule, PismRecord]


def draw_request(cfg: PismConfig, sample: Sample, images: list[Image.Image], i: int, k: int,
                 grid: VisionGrid | None = None) -> GenerationRequest:
    """The request for draw k at ratio index i: masks and sampling seed derived from (seed, id, ratio, k)
    (masks from draw 0's seed for every k under `mask_draws: shared`).
    `grid` (the engine's, for `patch` masks) comes from `backend.vision_grid()`."""
    ratio = cfg.ratios[i]
    seed = draw_seed(cfg.seed, sample.id, ratio, k)
    mask_seed = draw_seed(cfg.seed, sample.id, ratio, 0) if cfg.mask_draws == "shared" else seed
    masked = [mask_image(img, ratio, cfg.mask_mode, mask_seed + j, grid=grid) for j, img in enumerate(images)]
    return GenerationRequest(sample.prompt_messages, masked, seed=seed)


def _engine_error(rec: PismRecord, exc: Exception) -> None:
    """The engine failed: the sample is an error, not a wrong answer."""
    rec.error, rec.error_detail = engine_failure(exc)


def _judge(cfg: PismConfig, item: _Item, i: int, k: int, gen: Generation, verdict) -> None:
    _, _, sched, rec = item
    if rec.error:
        return
    failure = verdict_failure(verdict)
    if failure:
        rec.error, rec.error_detail = failure
        return
    sched.record(i, verdict.passed)
    if verdict.passed and cfg.ratios[i] == 0.0 and rec.clean_response is None:
        rec.clean_response = gen.text
    rec.tokens += gen.num_tokens
    rec.prompt_tokens += gen.prompt_tokens
    rec.prefilled_tokens += gen.prefilled_tokens
    rec.draws.append({"ratio_index": i, "draw": k, "passed": verdict.passed, "tokens": gen.num_tokens})


def _rounds(active: list[_Item], backend: GenerationBackend, cfg: PismConfig, grid: VisionGrid | None) -> None:
    """One draw per unfinished sample per call to `generate`: the engine batches across samples."""
    while active:
        wave = [(item, *nxt) for item in active if (nxt := item[2].next_draw()) is not None]
        if not wave:
            break
        verified = generate_and_verify([item[0] for item, _, _ in wave], [[draw_request(cfg, item[0], item[1], i, k, grid)] for item, i, k in wave],
                                       backend)
        for (item, i, k), v in zip(wave, verified):
            if v.generations:
                _judge(cfg, item, i, k, v.generations[0], v.verdicts[0])
            else:  # the engine failed: the whole wave is errors
                item[3].error, item[3].error_detail = v.error, v.error_detail
        active = [item for item in active if not item[3].error and not item[2].done]


class PismStream:
    """Event-driven scoring on one streaming engine: a sample's next draw goes in as soon as its
    previous one is judged.

    Samples of several callers can share it (`add` while others are in flight): the PISM actor's
    concurrent batches all feed one engine through one stream (`score`), so when one batch is down
    to its last few samples the others keep the engine full. Any caller's `step` advances every
    caller's samples; records do not depend on who steps or on what else is in flight (draws are
    seeded).

    With `speculate_after_misses` > 0, a ratio that has that many misses gets all its remaining draws
    sent at once. Returned draws wait in `ready` and are judged in draw order, so the schedule sees
    exactly the verdicts it would have seen one at a time; those it never asks for (its ratio got
    decided first) are counted in the record's `speculative_generations`.
    """

    def __init__(self, backend: GenerationBackend, cfg: PismConfig):
        if not backend.streaming:
            raise ValueError("PismStream needs a streaming backend (submit/poll); use score_samples for batched ones")
        self.backend, self.cfg = backend, cfg
        self.grid = _grid(backend, cfg)
        self.queue: deque[_Item] = deque()  # samples waiting for room under max_in_flight
        self.in_flight: dict[str, tuple[_Item, int, int]] = {}
        self.sent: dict[int, set[tuple[int, int]]] = {}  # draws in flight, per sample
        self.ready: dict[int, dict[tuple[int, int], Generation]] = {}  # back, not judged yet
        self.returned: dict[int, int] = {}
        self.limit = cfg.max_in_flight or float("inf")  # 0: one draw per unfinished sample (up to K with speculation)

    def add(self, active: list[_Item]) -> None:
        for item in active:
            self.sent[id(item)], self.ready[id(item)], self.returned[id(item)] = set(), {}, 0
        self.queue.extend(active)
        self._fill()

    def busy(self, active: list[_Item]) -> bool:
        """Whether any of these samples still waits for a draw, or has one in flight (run ahead by speculation)."""
        return any((not item[3].error and not item[2].done) or self.sent[id(item)] for item in active)

    def step(self) -> None:
        """One engine step: judge what finished, send what those samples need next."""
        if not self.in_flight:
            raise RuntimeError("PismStream.step: nothing in flight")  # a scheduling bug, not bad data
        try:
            finished = self.backend.poll()
        except Exception as exc:
            for item, _, _ in self.in_flight.values():
                _engine_error(item[3], exc)
                self.sent[id(item)].clear()
            self.in_flight.clear()
            self._fill()
            return
        for rid, gen in finished:
            item, i, k = self.in_flight.pop(rid)
            self.sent[id(item)].discard((i, k))
            self.returned[id(item)] += 1
            self.ready[id(item)][(i, k)] = gen
            self._advance(item)
        self._fill()

    def finish(self, records: list[PismRecord], active: list[_Item]) -> list[PismRecord]:
        """The records of one caller's samples (all done): counts copied, per-sample state dropped."""
        for item in active:
            if not item[3].error:
                item[3].speculative_generations = self.returned[id(item)] - item[2].generations
            for table in (self.sent, self.ready, self.returned):
                table.pop(id(item), None)
        return _finish(records, active)

    async def score(self, samples: Sequence[Sample], policy: ImagePolicy | None = None) -> list[PismRecord]:
        """`score_samples` for one of several concurrent callers (asyncio tasks on one event loop):
        each engine step is taken by whichever caller runs, then the others get their turn."""
        import asyncio

        records, active = _prepare(samples, self.cfg, policy)
        self.add(active)
        while self.busy(active):
            self.step()
            await asyncio.sleep(0)
        return self.finish(records, active)

    def _send(self, item: _Item, i: int, k: int) -> bool:
        try:
            self.in_flight[self.backend.submit(draw_request(self.cfg, item[0], item[1], i, k, self.grid))] = (item, i, k)
        except Exception as exc:
            _engine_error(item[3], exc)
            return False
        self.sent[id(item)].add((i, k))
        return True

    def _advance(self, item: _Item) -> None:
        """Judge the sample's returned draws in schedule order, then send what it needs next."""
        sched, rec, mine, sent, spec = item[2], item[3], self.ready[id(item)], self.sent[id(item)], self.cfg.speculate_after_misses
        while not rec.error and (nxt := sched.next_draw()) is not None:
            if nxt in mine:
                gen = mine.pop(nxt)
                _judge(self.cfg, item, *nxt, gen, judge([(item[0], gen.text)])[0])
                continue
            if nxt not in sent and not self._send(item, *nxt):
                return
            i, k = nxt
            if spec and sched.runs[i] - sched.successes[i] >= spec:
                for extra in range(k + 1, self.cfg.draws):
                    if len(self.in_flight) >= self.limit:
                        break
                    if (i, extra) not in sent and (i, extra) not in mine and not self._send(item, i, extra):
                        return
            return

    def _fill(self) -> None:
        while self.queue and len(self.in_flight) < self.limit:
            self._advance(self.queue.popleft())
