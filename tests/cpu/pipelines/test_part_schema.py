"""Parts and final files have one fixed schema: however the rows fall into blocks (a block of only
quarantined rows has all-null result columns, which pandas types as double or object), scores.parquet
and quarantine.parquet come out byte for byte the same. Real PISM actor on the tiny random model
(HF backend, no Ray): its frames go to ResumableOutput as they do in the pipeline, once as the actor
returns them and once after an Arrow round trip (what Ray's block conversion does to them)."""
import asyncio
import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from engine.config import to_dict
from engine.data.sample import ImageRef, Message, Sample
from engine.data.shards import write_shards
from engine.generation.base import GenerationConfig
from engine.pism import PismConfig
from pipelines.pism import OUTPUT_SCHEMA, PismActor
from pipelines.resumable import ResumableOutput, job_stamp
from engine.data.images import ImagePolicy

PISM = PismConfig(ratios=[0.0, 0.5], draws=2, tau=0.5, schedule="reference")


def _png(color: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (56, 56), color).save(buf, format="PNG")
    return buf.getvalue()


def _sample(sid: str, color: str, text: str = "<image>How many shapes are there? Put the final answer in \\boxed{}.") -> Sample:
    return Sample(sid, [ImageRef(_png(color))], [Message("user", text)], "3", "counting", "count")


@pytest.fixture(scope="module")
def frames(tiny_random_model, tmp_path_factory):
    """Actor output for: all rows in one batch, the good rows alone, the quarantined rows alone."""
    good = [_sample("g1", "red"), _sample("g2", "blue")]
    bad = [Sample("q1", [ImageRef(_png("green"))], [], "3", "counting", "count"),  # empty_messages
           _sample("q2", "white", text="no placeholder for the image")]  # image_placeholder_mismatch
    folder = tmp_path_factory.mktemp("shards")

    def batch(samples, name):
        (path,) = write_shards(samples, folder, prefix=name)
        return pq.read_table(path).to_pandas()

    gen = GenerationConfig(backend="hf", model_path=str(tiny_random_model), max_new_tokens=8, device="cpu")
    actor = PismActor(to_dict(PISM), to_dict(gen), {"model_id": "tiny", "config_hash": "h", "seed": 0, "gradus_version": "v"})
    run = lambda frame: asyncio.run(actor(frame))  # noqa: E731  (the actor's batches are coroutines Ray Data awaits)
    return run(batch(good + bad, "all")), run(batch(good, "good")), run(batch(bad, "bad"))


def _finish(out, parts) -> tuple[bytes, bytes]:
    output = ResumableOutput(out, job_stamp("h", "in", ImagePolicy()), OUTPUT_SCHEMA)
    for frame in parts:
        output.write_part(frame)
    frame, bad = output.finish()
    assert sorted(frame.loc[bad, "error"]) == ["empty_messages", "image_placeholder_mismatch"] and frame.loc[~bad, "error"].isna().all()
    return (out / "scores.parquet").read_bytes(), (out / "quarantine.parquet").read_bytes()


def _via_arrow(frame):
    return pa.Table.from_pandas(frame, preserve_index=False).to_pandas()


def test_a_block_of_only_quarantined_rows_writes_the_same_bytes(frames, tmp_path):
    whole, good, bad = frames
    assert bad["generations"].isna().all()  # the case at hand: nothing typed the result columns
    one_block = _finish(tmp_path / "one", [whole])
    assert _finish(tmp_path / "split", [good, bad]) == one_block
    assert _finish(tmp_path / "arrow", [_via_arrow(bad), _via_arrow(good)]) == one_block
    scores = pq.read_schema(tmp_path / "split" / "scores.parquet")
    assert scores == pq.read_schema(tmp_path / "split" / "quarantine.parquet") == OUTPUT_SCHEMA
    assert scores.field("generations").type == pa.int64() and scores.field("split").type == pa.string()
