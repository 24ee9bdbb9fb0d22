"""A shard row naming a verifier gradus does not have (written straight to shards, past conversion) is
an error record in every stage that judges answers, never a crash of the batch: the other rows of
the same batch get their normal records. Real generation on the tiny random model (HF backend, no
Ray): the scoring actors are called with a batch exactly as Ray Data hands it to them."""
import asyncio
import io

import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from engine.cmab.solve import solve
from engine.config import to_dict
from engine.data.images import ImagePolicy
from engine.data.sample import ImageRef, Message, Sample
from engine.data.shards import shard_paths, write_shards
from engine.generation.base import GenerationConfig
from engine.generation.factory import make_backend
from engine.pism import PismConfig, score_samples
from pipelines.cmab import CmabActor, CmabJobConfig, CmabResponsesConfig
from pipelines.evaluate import EvalActor
from pipelines.generate import GenerateActor
from pipelines.pism import PismActor

UNKNOWN = "count_v2"


def _png(color: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (56, 56), color).save(buf, format="PNG")
    return buf.getvalue()


def _sample(sid: str, verifier: str, color: str) -> Sample:
    return Sample(sid, [ImageRef(_png(color))], [Message("user", "<image>How many shapes are there? Put the final answer in \\boxed{}.")],
                  "3", "counting", verifier)


@pytest.fixture(scope="module")
def samples():
    return [_sample("a", "count", "red"), _sample("b", UNKNOWN, "green"), _sample("c", "numeric", "blue")]


@pytest.fixture(scope="module")
def batch(samples, tmp_path_factory):
    """The shard as Ray Data's pandas batch."""
    (path,) = write_shards(samples, tmp_path_factory.mktemp("shard"))
    assert shard_paths(path.parent) == [path]
    return pq.read_table(path).to_pandas()


@pytest.fixture(scope="module")
def generation(tiny_random_model):
    return GenerationConfig(backend="hf", model_path=str(tiny_random_model), max_new_tokens=8, device="cpu")


PISM = PismConfig(ratios=[0.0, 0.5], draws=2, tau=0.5, schedule="reference")


def _by_id(frame):
    """Rows by id; pandas turns a missing number into NaN, so "no error" is checked with isna."""
    return {row["id"]: row for row in frame.to_dict("records")}


def _assert_unknown(row):
    assert row["error"] == "unknown_verifier"
    assert UNKNOWN in row["error_detail"] and "count" in row["error_detail"]


def test_pism_actor_batch_with_an_unknown_verifier(batch, generation):
    rows = _by_id(asyncio.run(PismActor(to_dict(PISM), to_dict(generation), {})(batch)))  # Ray Data awaits the actor's batches
    _assert_unknown(rows["b"])
    assert pd.isna(rows["b"]["generations"])  # nothing was generated for it
    for sid in ("a", "c"):
        assert pd.isna(rows[sid]["error"]) and rows[sid]["generations"] >= 2 and rows[sid]["runs"][0] >= 1


def test_score_samples_records_the_error(samples, generation):
    backend = make_backend(generation)
    try:
        a, b, c = score_samples(samples, backend, PISM, ImagePolicy())
    finally:
        backend.close()
    assert (b.error, b.generations, b.bucket) == ("unknown_verifier", 0, None) and UNKNOWN in b.error_detail
    assert a.error is None and c.error is None and a.generations >= 2 and c.generations >= 2


def test_cmab_solve_records_the_error(samples, generation):
    backend = make_backend(generation)
    try:
        a, b, c = solve([(s, s.load_images(ImagePolicy())) for s in samples], backend, draws=2, seed=0)
    finally:
        backend.close()
    assert (b.error, b.generations, b.response) == ("unknown_verifier", 0, None) and UNKNOWN in b.error_detail
    assert a.error is None and c.error is None and a.generations >= 1 and c.generations >= 1


def test_generate_actor_batch(batch, generation):
    rows = _by_id(GenerateActor(to_dict(generation), 0, "tiny", "h")(batch))
    _assert_unknown(rows["b"])
    assert pd.isna(rows["b"]["output"]) and pd.isna(rows["b"]["passed"])  # an error, not a wrong answer
    assert all(pd.isna(rows[sid]["error"]) and isinstance(rows[sid]["output"], str) for sid in ("a", "c"))


def test_eval_actor_batch(batch, generation):
    rows = _by_id(EvalActor(to_dict(generation), 2, 0, "tiny", {})(batch))
    _assert_unknown(rows["b"])
    assert all(pd.isna(rows[sid]["error"]) and rows[sid]["n"] == 2 for sid in ("a", "c"))


def test_cmab_actor_batch(batch, generation, tiny_random_model):
    """No PISM answers: a and c go through generate-and-verify and get a verdict (a CMAB score, or
    unsolved after both draws), not an error; b never reaches it."""
    job = CmabJobConfig(model_path=str(tiny_random_model), device="cpu", responses=CmabResponsesConfig(draws=2),
                        generation=GenerationConfig(backend="hf", max_new_tokens=8))
    rows = _by_id(CmabActor(to_dict(job), [], {}, [])(batch))
    _assert_unknown(rows["b"])
    assert rows["b"]["generations"] == 0
    for sid in ("a", "c"):
        row = rows[sid]
        assert pd.isna(row["error"]) and 1 <= row["generations"] <= 2, row
        assert (row["unsolved"] is True and row["generations"] == 2) or row["rho_bar"] is not None, row
