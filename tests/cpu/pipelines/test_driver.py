"""The scoring driver's plug-in contract (pipelines/driver.py): every scoring job declares its stage,
output schema and store metric, and a schema that cannot feed the metric it names is refused at
import time, before any job runs, not when the difficulty store reads the scores."""
import pyarrow as pa
import pytest

from engine.shaping.store import METRICS
from pipelines.driver import Scorer
from pipelines.resumable import output_schema


class _Stage:
    pass


def test_every_scoring_job_declares_its_stage_schema_and_store_metric():
    from pipelines import cmab, evaluate, pism, rejection_sample

    declared = {m.SCORER.name: (m.SCORER.stage.__name__, m.SCORER.metric) for m in (pism, cmab, evaluate, rejection_sample)}
    assert declared == {"pism": ("PismActor", "pism"), "cmab": ("CmabActor", "cmab"), "eval": ("EvalActor", "pass_rate"),
                        "rejection-sample": ("RejectionActor", "")}
    for module in (pism, cmab, evaluate, rejection_sample):
        assert module.SCORER.columns == module.OUTPUT_COLUMNS  # what an actor fills; the provenance columns follow
        metric = module.SCORER.metric
        if metric:  # the store keeps these columns of the scores file, with these types
            for name, kind in METRICS[metric].values:
                assert module.OUTPUT_SCHEMA.field(name).type == kind


def test_a_schema_that_cannot_feed_its_metric_is_refused():
    lacking = output_schema(["id", "bucket", "unsolved", "error"], unsolved=pa.bool_())  # no lambda_star
    with pytest.raises(ValueError, match="lacks its required column 'lambda_star'"):
        Scorer("x", lacking, _Stage, metric="pism")
    mistyped = output_schema(["id", "pass_rate", "n", "error"], pass_rate=pa.string(), n=pa.int64())
    with pytest.raises(ValueError, match="column 'pass_rate' must be double"):
        Scorer("x", mistyped, _Stage, metric="pass_rate")


def test_result_rows_have_every_column_then_provenance():
    scorer = Scorer("x", output_schema(["id", "n", "error"], n=pa.int64()), _Stage)
    frame = scorer.frame([scorer.blank(id="a", n=2)], {"model_id": "m", "config_hash": "h", "seed": 0, "gradus_version": "v"})
    assert list(frame.columns) == ["id", "n", "error", "model_id", "config_hash", "seed", "gradus_version"]
    assert frame.iloc[0].to_dict() == {"id": "a", "n": 2, "error": None, "model_id": "m", "config_hash": "h", "seed": 0, "gradus_version": "v"}
