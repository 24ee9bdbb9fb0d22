"""PISM on the warm-started tiny model through a real engine (HF transformers, seeded sampling at 0.7).

Brute force, independent of any schedule: every draw of every ratio (the full K x ratios table) is
generated straight on the backend and judged by the sample's verifier; Pc, lambda*, unsolved and the
bucket then follow the definitions (Pc = successes / K, lambda* = the first ratio with Pc < tau,
unsolved = Pc(0) < tau, hard <= 0.4 < mid < 0.7 <= easy or never failing), written out here rather
than taken from engine.pism. Both schedules must give those results, and every draw they ran must
have the outcome of the same (seeded) draw in the table. Shared with the scorer: the draw itself
(mask and sampling seed from draw_request), which is what makes the table comparable.
tau * K = 2 here, so a ratio needs two successes to pass (a single success is not enough).
"""
import pytest

from engine.config import from_dict
from engine.data.images import ImagePolicy
from engine.data.shards import iter_samples
from engine.generation.base import GenerationConfig
from engine.generation.factory import make_backend
from engine.vision_grid import VisionGrid
from engine.pism import PismConfig, score_samples
from engine.pism.schedule import replay
from engine.pism.scorer import draw_request
from engine.verifiers import verify

RATIOS = [0.0, 0.3, 0.6, 0.9]
DRAWS = 4
TAU = 0.5


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
    b = make_backend(GenerationConfig(backend="hf", model_path=str(warm_model), temperature=0.7, max_new_tokens=24,
                                      device="cpu", hf_batch_size=64))
    yield b
    b.close()


def _cfg(schedule, mode):
    return from_dict(PismConfig, {"ratios": RATIOS, "draws": DRAWS, "tau": TAU, "schedule": schedule, "mask_mode": mode, "seed": 1})


def _full_table(samples, backend, cfg, grid):
    """passed[sample][ratio][draw] for every draw, generated in one call and judged one by one."""
    keys = [(n, i, k) for n in range(len(samples)) for i in range(len(RATIOS)) for k in range(DRAWS)]
    images = [s.load_images(ImagePolicy()) for s in samples]
    gens = backend.generate([draw_request(cfg, samples[n], images[n], i, k, grid) for n, i, k in keys])
    table = [[[None] * DRAWS for _ in RATIOS] for _ in samples]
    for (n, i, k), g in zip(keys, gens):
        s = samples[n]
        table[n][i][k] = verify(s.verifier, g.text, s.answer, s.verifier_params).passed
    return table


def _definitions(rows):
    pc = [sum(row) / DRAWS for row in rows]
    lam = next((RATIOS[i] for i, p in enumerate(pc) if p < TAU), None)
    unsolved = pc[0] < TAU
    if unsolved:
        return lam, True, None
    bucket = "easy" if lam is None or lam >= 0.7 else "hard" if lam <= 0.4 else "mid"
    return lam, False, bucket


@pytest.mark.parametrize("mode", ["rect", "patch"])
def test_both_schedules_equal_the_full_table(samples, backend, warm_model, mode):
    grid = VisionGrid.from_model(str(warm_model)) if mode == "patch" else None  # read from the folder, not from the backend
    table = _full_table(samples, backend, _cfg("reference", mode), grid)
    truth = [_definitions(rows) for rows in table]
    runs = {}
    for schedule in ("reference", "adaptive"):
        records = score_samples(samples, backend, _cfg(schedule, mode))
        runs[schedule] = sum(r.generations for r in records)
        for rec, s, rows, want in zip(records, samples, table, truth):
            assert rec.error is None, (s.id, rec.error_detail)
            assert (rec.lambda_star, rec.unsolved, rec.bucket) == want, (schedule, s.id, rows, rec.runs)
            for d in rec.draws:  # each draw it ran is the table's draw
                assert d["passed"] == rows[d["ratio_index"]][d["draw"]], (schedule, s.id, d)
            assert rec.generations == len(rec.draws) == sum(rec.runs)
            last = len(RATIOS) - 1 if schedule == "reference" or want[0] is None else RATIOS.index(want[0])
            assert [i for i, n in enumerate(rec.runs) if n] == list(range(last + 1))
            # the clean-image answer CMAB reuses: present whenever a clean draw it ran passed, and it verifies
            assert (rec.clean_response is not None) == any(d["passed"] for d in rec.draws if d["ratio_index"] == 0)
            if rec.clean_response is not None:
                assert verify(s.verifier, rec.clean_response, s.answer, s.verifier_params).passed
    assert runs["adaptive"] < runs["reference"]
    assert {b for _, _, b in truth} - {None}, "the warm model should solve some samples on clean images"
    # the case a first-success exit gets wrong: a ratio with exactly one success of K (Pc = 0.25 < tau)
    assert any(sum(row) == 1 for rows in table for row in rows)


def test_approx_schedule_runs_on_the_engine_with_the_tables_draws(samples, backend):
    """schedule: approx end to end on HF: every draw it runs is the full table's (same seeds), and its
    records are its decision rule (tested on its own in test_approx_schedule.py) applied to those draws,
    which stops some sample before the exact schedule would."""
    table = _full_table(samples, backend, _cfg("reference", "rect"), None)
    approx_cfg, exact_cfg = _cfg("approx", "rect"), _cfg("adaptive", "rect")
    early = 0
    for rec, s, rows in zip(score_samples(samples, backend, approx_cfg), samples, table):
        assert rec.error is None, (s.id, rec.error_detail)
        for d in rec.draws:
            assert d["passed"] == rows[d["ratio_index"]][d["draw"]], (s.id, d)
        want = replay(approx_cfg, lambda i, k: rows[i][k])
        assert (rec.runs, rec.successes, rec.lambda_star, rec.unsolved, rec.bucket) == \
            (want.runs, want.successes, want.lambda_star, want.unsolved, want.bucket), (s.id, rows)
        assert rec.generations == len(rec.draws) == sum(rec.runs)
        exact = replay(exact_cfg, lambda i, k: rows[i][k])
        assert all(a <= e for a, e in zip(rec.runs, exact.runs))  # never a draw the exact walk would not make
        early += rec.generations < exact.generations
    assert early, "the default prior and delta should stop some sample early at K = 4, tau = 0.5"
