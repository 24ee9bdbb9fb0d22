"""A model retrained into the same folder is a new model to `gradus eval` (unit-scoped: files only, no model run)."""
import json
import os

from pipelines.evaluate import EvalJobConfig, _stamp, stale_models


def test_rewritten_weights_make_a_label_stale(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    weights = model / "model.safetensors"
    weights.write_bytes(b"a" * 16)
    cfg = EvalJobConfig(input=str(tmp_path / "test"), output=str(tmp_path / "eval"), models={"arm": str(model)})
    (tmp_path / "eval" / "arm").mkdir(parents=True)
    (tmp_path / "eval" / "arm" / "job.json").write_text(json.dumps(_stamp(cfg, str(model))))
    assert stale_models(cfg) == []
    weights.write_bytes(b"b" * 16)  # same size, new content: retrained
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 1_000_000))
    assert stale_models(cfg) == ["arm"]
    cfg.models = {"other": str(model)}  # never evaluated: nothing to redo
    assert stale_models(cfg) == []


def test_other_image_roots_make_a_label_stale(tmp_path):
    """Rows quarantined for want of an image root must not be resumed as done once a root is given."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    cfg = EvalJobConfig(input=str(tmp_path / "test"), output=str(tmp_path / "eval"), models={"arm": str(model)})
    (tmp_path / "eval" / "arm").mkdir(parents=True)
    (tmp_path / "eval" / "arm" / "job.json").write_text(json.dumps(_stamp(cfg, str(model))))
    cfg.images = cfg.images.with_roots([tmp_path / "images"])
    assert stale_models(cfg) == ["arm"]
