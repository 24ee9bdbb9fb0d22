"""Ray Data generation pipeline: actor pool over shards, bad rows become errors, not wrong answers."""
from dataclasses import replace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.data.sample import SAMPLE_SCHEMA
from engine.data.shards import shard_paths
from engine.generation.base import GenerationConfig
from pipelines.generate import ActorPoolConfig, GenerateJobConfig, run_generate

pytestmark = pytest.mark.slow


def test_pipeline_records_errors_and_keeps_every_row(ray_session, warm_model, warm_corpus, tmp_path):
    rows = pq.read_table(shard_paths(warm_corpus / "test")[0]).slice(0, 10).to_pylist()
    rows[3]["images"] = [{"bytes": b"not an image", "path": None}]
    rows[5]["meta"] = "{broken json"
    src = tmp_path / "in"
    src.mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=SAMPLE_SCHEMA), src / "part-00000.parquet")

    cfg = GenerateJobConfig(
        input=str(src),
        output=str(tmp_path / "out"),
        generation=GenerationConfig(backend="hf", model_path=str(warm_model), max_new_tokens=24),
        actors=ActorPoolConfig(num_cpus=1, batch_size=4),
    )
    summary = run_generate(replace(cfg, model_id="gradus/tiny-qwen2.5-vl"))
    assert summary["rows"] == 10
    assert summary["errors"] == {"image_corrupt": 1, "bad_json": 1}
    out = pq.read_table(tmp_path / "out").to_pandas()
    assert sorted(out["id"]) == sorted(r["id"] for r in rows)  # nothing lost, nothing duplicated
    bad = out[out["error"].notna()]
    assert bad["passed"].isna().all()  # errors are not counted as wrong answers
