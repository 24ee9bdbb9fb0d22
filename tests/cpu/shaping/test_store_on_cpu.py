"""Difficulty store: joining scoring runs onto canonical samples, partitions, provenance, reporting.

Inputs are hand-written: a few canonical samples built in-process and PISM / CMAB / generation
score files in the exact column layout the pipelines write (OUTPUT_COLUMNS of pipelines/pism.py,
pipelines/cmab.py, pipelines/generate.py plus the provenance columns), written the way
pipelines/resumable.py writes them (pandas -> parquet).
"""
import ast
import io
import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from engine.config import ConfigError, load_config
from engine.data.sample import ImageRef, Message, Sample
from engine.data.shards import write_shards
from engine.shaping.store import (ProvenanceConflict, ScoreSource, build_store, read_manifest, read_store, store_dataset)
from pipelines.shaping.store import StoreConfig, run_store

REPO = Path(__file__).resolve().parents[3]
PROVENANCE = ["model_id", "config_hash", "seed", "gradus_version"]
PISM_COLUMNS = ["id", "task", "split", "successes", "runs", "lambda_star", "bucket", "unsolved", "generations", "tokens",
                "prompt_tokens", "prefilled_tokens", "speculative_generations", "mask_mode", "mask_draws", "schedule", "error",
                "error_detail", "draws_json", "clean_response"]
CMAB_COLUMNS = ["id", "task", "split", "mode", "rho_bar", "bucket", "unsolved", "response_source", "response", "generations",
                "tokens", "layer_profile", "prompt_tokens", "response_tokens", "image_tokens", "image_spans", "error",
                "error_detail"]  # attention_rows is dropped from scores.parquet by the pipeline
GENERATE_COLUMNS = ["id", "task", "split", "output", "num_tokens", "finish_reason", "extracted", "score", "passed", "verify_reason",
                    "error", "error_detail"]


def _output_columns(module: str) -> list[str]:
    """OUTPUT_COLUMNS of a pipeline module, read without importing it (that would import torch)."""
    tree = ast.parse((REPO / module).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "OUTPUT_COLUMNS" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"no OUTPUT_COLUMNS in {module}")


def test_hand_written_layouts_match_the_pipelines():
    assert _output_columns("pipelines/pism.py") == PISM_COLUMNS
    assert _output_columns("pipelines/cmab.py") == CMAB_COLUMNS + ["attention_rows"]
    assert _output_columns("pipelines/generate.py") == GENERATE_COLUMNS


def png(color: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buf, format="PNG")
    return buf.getvalue()


DOMAINS = {"s0": "perception", "s1": "perception", "s2": "perception", "s3": "perception",
           "s4": "reasoning", "s5": "reasoning", "s6": "reasoning", "s7": "reasoning"}


def make_samples(folder: Path) -> Path:
    samples = [Sample(sid, [ImageRef(png("red"))], [Message("user", f"<image>How many in {sid}?")], str(i), "counting", "count",
                      {}, DOMAINS[sid], "synth", "test" if sid == "s7" else "train", {"level": i})
               for i, sid in enumerate(DOMAINS)]
    write_shards(samples, folder, rows_per_shard=3)  # several shards: the join must not depend on one file
    return folder


def pism_row(sid, lambda_star=None, bucket=None, unsolved=False, error=None, **prov):
    row = {c: None for c in PISM_COLUMNS} | {"id": sid, "task": "counting", "split": "train", "lambda_star": lambda_star,
                                            "bucket": bucket, "unsolved": unsolved if error is None else None, "generations": 12,
                                            "mask_mode": "rect", "schedule": "adaptive", "error": error,
                                            "error_detail": f"{error} detail" if error else None}
    return row | {"model_id": "tiny", "config_hash": "pism-hash-1", "seed": 0, "gradus_version": "0.1.0"} | prov


def cmab_row(sid, rho_bar=None, bucket=None, unsolved=False, error=None, **prov):
    row = {c: None for c in CMAB_COLUMNS} | {"id": sid, "task": "counting", "split": "train", "mode": "paper", "rho_bar": rho_bar,
                                            "bucket": bucket, "unsolved": unsolved if error is None else None,
                                            "response_source": "pism", "error": error, "error_detail": error and "why"}
    return row | {"model_id": "tiny", "config_hash": "cmab-hash-1", "seed": 0, "gradus_version": "0.1.0"} | prov


def write_job_dir(folder: Path, rows: list[dict], quarantined: list[dict] = ()) -> Path:
    """A scoring job's output directory as pipelines/resumable.py leaves it."""
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(folder / "scores.parquet", index=False)
    pd.DataFrame(list(quarantined), columns=list(rows[0])).to_parquet(folder / "quarantine.parquet", index=False)
    return folder


def pism_dir(tmp_path: Path, name="pism", **prov) -> Path:
    rows = [pism_row("s0", None, "easy", **prov), pism_row("s1", 0.5, "mid", **prov), pism_row("s2", 0.2, "hard", **prov),
            pism_row("s3", 0.0, None, True, **prov), pism_row("s4", error="engine_error", **prov),
            pism_row("s5", 0.8, "easy", **prov), pism_row("ghost-1", 0.3, "hard", **prov)]
    quarantined = [pism_row("s6", error="image_corrupt", **prov)]  # s7: never scored
    return write_job_dir(tmp_path / name, rows, quarantined)


def cmab_dir(tmp_path: Path) -> Path:
    rows = [cmab_row("s0", 0.05, "easy"), cmab_row("s1", 0.3, "mid"), cmab_row("s2", 1.0, "hard"), cmab_row("s3", None, None, True),
            cmab_row("s5", error="no_response")]
    return write_job_dir(tmp_path / "cmab", rows)


@pytest.fixture
def samples(tmp_path):
    return make_samples(tmp_path / "shards")


def by_id(table) -> dict:
    return {r["id"]: r for r in table.to_pylist()}


def test_join_tags_every_sample_and_keeps_errors(tmp_path, samples):
    manifest = build_store(tmp_path / "store", {"pism": ScoreSource(str(pism_dir(tmp_path))), "cmab": ScoreSource(str(cmab_dir(tmp_path)))},
                           samples=str(samples))
    rows = by_id(read_store(tmp_path / "store"))
    assert sorted(rows) == sorted(DOMAINS) and manifest["rows"] == 8
    assert (rows["s1"]["pism.bucket"], rows["s1"]["pism.lambda_star"], rows["s1"]["pism.stratum"]) == ("mid", 0.5, "mid")
    assert (rows["s0"]["pism.lambda_star"], rows["s0"]["pism.stratum"]) == (None, "easy")  # never failed: lambda* undefined
    assert (rows["s3"]["pism.stratum"], rows["s3"]["pism.unsolved"], rows["s3"]["pism.bucket"]) == ("unsolved", True, None)
    # errored rows stay, as errors: no metric value, the reason and detail kept (engine error and a quarantined row)
    assert (rows["s4"]["pism.stratum"], rows["s4"]["pism.error"], rows["s4"]["pism.error_detail"]) == ("error", "engine_error", "engine_error detail")
    assert rows["s4"]["pism.lambda_star"] is None and rows["s4"]["pism.bucket"] is None
    assert (rows["s6"]["pism.stratum"], rows["s6"]["pism.error"]) == ("error", "image_corrupt")
    assert (rows["s5"]["cmab.stratum"], rows["s5"]["cmab.error"], rows["s5"]["cmab.rho_bar"]) == ("error", "no_response", None)
    # no score: nulls and the "unscored" stratum
    s7 = rows["s7"]
    assert s7["pism.stratum"] == "unscored" and all(s7[f"pism.{c}"] is None for c in ["lambda_star", "bucket", "unsolved", "error", "model_id"])
    assert rows["s4"]["cmab.stratum"] == "unscored"
    assert (rows["s2"]["cmab.rho_bar"], rows["s2"]["cmab.bucket"], rows["s2"]["cmab.response_source"]) == (1.0, "hard", "pism")
    # provenance per metric, per row and in the manifest
    assert (rows["s1"]["pism.model_id"], rows["s1"]["pism.config_hash"], rows["s1"]["pism.seed"]) == ("tiny", "pism-hash-1", 0)
    assert manifest["sources"]["cmab"]["provenance"] == {"model_id": "tiny", "config_hash": "cmab-hash-1", "seed": 0, "gradus_version": "0.1.0"}
    assert manifest["sources"]["pism"]["strata"] == {"easy": 2, "error": 2, "hard": 1, "mid": 1, "unscored": 1, "unsolved": 1}
    # canonical columns come through unchanged
    assert rows["s2"]["images"][0]["bytes"] == png("red") and rows["s2"]["messages"][0]["content"] == "<image>How many in s2?"
    assert (rows["s7"]["split"], rows["s5"]["domain"], json.loads(rows["s2"]["meta"])) == ("test", "reasoning", {"level": 2})
    assert (len(manifest["config_hash"]), manifest["gradus_version"], "seed" in manifest) == (16, "0.1.0", True)


def test_score_ids_absent_from_samples_are_reported(tmp_path, samples):
    manifest = build_store(tmp_path / "store", {"pism": ScoreSource(str(pism_dir(tmp_path)))}, samples=str(samples))
    assert manifest["sources"]["pism"]["unmatched"] == 1 and manifest["sources"]["pism"]["unmatched_examples"] == ["ghost-1"]
    assert manifest["unmatched"]["rows"] == 1
    assert pq.read_table(tmp_path / "store" / "unmatched.parquet").to_pylist() == [{"namespace": "pism", "id": "ghost-1", "reason": "not in samples"}]
    assert "ghost-1" not in read_store(tmp_path / "store", columns=["id"]).column("id").to_pylist()


def test_one_bucket_or_one_domain_reads_alone(tmp_path, samples):
    store = tmp_path / "store"
    build_store(store, {"pism": ScoreSource(str(pism_dir(tmp_path)))}, samples=str(samples), partition_by=["domain", "pism.stratum"],
                rows_per_file=2)
    assert (store / "data" / "domain=perception" / "pism.stratum=mid").is_dir()
    mid = read_store(store, where={"pism.stratum": ["mid"]})
    assert mid.column("id").to_pylist() == ["s1"]
    # only the mid directories are opened
    import pyarrow.compute as pc

    files = [f.path for f in store_dataset(store).get_fragments(filter=pc.field("pism.stratum") == "mid")]
    assert files and all("/pism.stratum=mid/" in f for f in files)
    reasoning = read_store(store, where={"domain": ["reasoning"]}, columns=["id", "pism.stratum"])
    assert by_id(reasoning) == {"s4": {"id": "s4", "pism.stratum": "error"}, "s5": {"id": "s5", "pism.stratum": "easy"},
                                "s6": {"id": "s6", "pism.stratum": "error"}, "s7": {"id": "s7", "pism.stratum": "unscored"}}
    # a partition directory is a plain hive dataset: other tools read it without gradus
    import pyarrow.dataset as ds

    alone = ds.dataset(store / "data" / "domain=reasoning" / "pism.stratum=easy", format="parquet").to_table()
    assert alone.column("id").to_pylist() == ["s5"]
    # adding a metric later keeps the partitioning unless asked otherwise
    assert build_store(store, {"cmab": ScoreSource(str(cmab_dir(tmp_path)))})["partition_by"] == ["domain", "pism.stratum"]
    assert read_store(store, where={"pism.stratum": ["mid"]}, columns=["id", "cmab.bucket"]).to_pylist() == [{"id": "s1", "cmab.bucket": "mid"}]


def test_second_model_adds_columns_beside_the_first(tmp_path, samples):
    store = tmp_path / "store"
    build_store(store, {"pism": ScoreSource(str(pism_dir(tmp_path)))}, samples=str(samples), partition_by=["domain", "pism.stratum"])
    before = by_id(read_store(store))
    big = write_job_dir(tmp_path / "pism-big", [pism_row("s1", 0.9, "easy", model_id="qwen-7b", config_hash="pism-hash-7b"),
                                                pism_row("s7", 0.1, "hard", model_id="qwen-7b", config_hash="pism-hash-7b")])
    manifest = build_store(store, {"pism@7b": ScoreSource(str(big))}, partition_by=["domain", "pism@7b.stratum"])  # no samples: extend
    after = by_id(read_store(store))
    assert sorted(after) == sorted(before)
    for sid, row in after.items():
        assert {k: v for k, v in row.items() if not k.startswith("pism@7b.")} == before[sid]  # the first model's columns untouched
    assert (after["s1"]["pism.bucket"], after["s1"]["pism@7b.bucket"], after["s1"]["pism@7b.model_id"]) == ("mid", "easy", "qwen-7b")
    assert after["s0"]["pism@7b.stratum"] == "unscored"
    assert {ns: s["status"] for ns, s in manifest["sources"].items()} == {"pism": "carried", "pism@7b": "added"}
    assert manifest["sources"]["pism"]["provenance"]["model_id"] == "tiny" and len(manifest["history"]) == 2
    assert manifest["sources"]["pism"]["unmatched_examples"] == ["ghost-1"]  # still reported after the rewrite
    assert (store / "data" / "domain=reasoning" / "pism@7b.stratum=hard").is_dir()


def test_rebuild_on_other_samples_carries_metrics_and_reports_lost_ids(tmp_path, samples):
    store = tmp_path / "store"
    build_store(store, {"pism": ScoreSource(str(pism_dir(tmp_path)))}, samples=str(samples))
    fewer = tmp_path / "fewer"
    write_shards([s for s in (Sample.from_row(r) for r in read_store(store).to_pylist()) if s.domain == "perception"], fewer)
    manifest = build_store(store, {"cmab": ScoreSource(str(cmab_dir(tmp_path)))}, samples=str(fewer))
    rows = by_id(read_store(store))
    assert sorted(rows) == ["s0", "s1", "s2", "s3"] and manifest["samples"] == str(fewer)
    assert (rows["s1"]["pism.bucket"], rows["s1"]["cmab.bucket"]) == ("mid", "mid")  # pism carried from the old store
    assert manifest["sources"]["pism"]["status"] == "carried"
    assert manifest["sources"]["pism"]["unmatched_examples"] == ["ghost-1", "s4", "s5", "s6"]  # scored rows that lost their sample
    assert manifest["sources"]["cmab"]["unmatched_examples"] == ["s5"]


def test_conflicting_provenance_raises_unless_replace(tmp_path, samples):
    store = tmp_path / "store"
    build_store(store, {"pism": ScoreSource(str(pism_dir(tmp_path)))}, samples=str(samples))
    manifest_before = read_manifest(store)
    other = pism_dir(tmp_path, "pism-other", model_id="qwen-7b")
    with pytest.raises(ProvenanceConflict, match=r"pism already holds scores .*tiny.*qwen-7b.*replace=\[pism\]"):
        build_store(store, {"pism": ScoreSource(str(other))})
    assert read_manifest(store) == manifest_before  # the refused build left the store as it was
    assert set(read_store(store, columns=["pism.model_id"]).column("pism.model_id").to_pylist()) == {"tiny", None}
    # the same run again is a refresh, not a conflict
    assert build_store(store, {"pism": ScoreSource(str(pism_dir(tmp_path)))})["sources"]["pism"]["status"] == "refreshed"
    replaced = build_store(store, {"pism": ScoreSource(str(other))}, replace=["pism"])
    assert replaced["sources"]["pism"]["status"] == "replaced" and replaced["sources"]["pism"]["provenance"]["model_id"] == "qwen-7b"
    assert set(read_store(store, columns=["pism.model_id"]).column("pism.model_id").to_pylist()) == {"qwen-7b", None}
    with pytest.raises(ConfigError, match="replace names"):
        build_store(store, {"pism": ScoreSource(str(other))}, replace=["cmab"])


def test_pass_rates_from_generation_attempts_and_foreign_files(tmp_path, samples):
    attempts = [("s0", True, None), ("s0", False, None), ("s0", True, None), ("s0", None, "engine_error"), ("s1", False, None),
                ("s2", None, "image_corrupt")]
    gen = tmp_path / "gen"
    gen.mkdir()
    rows = [{c: None for c in GENERATE_COLUMNS} | {"id": sid, "passed": passed, "error": err, "model_id": "tiny", "config_hash": "g1",
                                                   "seed": 3, "gradus_version": "0.1.0"} for sid, passed, err in attempts]
    pd.DataFrame(rows[:3]).to_parquet(gen / "a.parquet", index=False)  # Ray writes several flat files
    pd.DataFrame(rows[3:]).to_parquet(gen / "b.parquet", index=False)
    foreign = tmp_path / "rates.parquet"
    pd.DataFrame({"id": ["s0", "s3"], "pass_rate": [0.25, 1.0]}).to_parquet(foreign, index=False)
    with pytest.raises(ConfigError, match=r"no model_id; set sources.pass_rate@ext.model_id"):
        build_store(tmp_path / "store", {"pass_rate@ext": ScoreSource(str(foreign))}, samples=str(samples))
    manifest = build_store(tmp_path / "store", {"pass_rate": ScoreSource(str(gen)), "pass_rate@ext": ScoreSource(str(foreign), model_id="ext-model")},
                           samples=str(samples))
    rows = by_id(read_store(tmp_path / "store"))
    assert (rows["s0"]["pass_rate.pass_rate"], rows["s0"]["pass_rate.n"]) == (pytest.approx(2 / 3), 3)  # errored attempt not counted
    assert (rows["s1"]["pass_rate.pass_rate"], rows["s1"]["pass_rate.stratum"]) == (0.0, "scored")
    assert (rows["s2"]["pass_rate.stratum"], rows["s2"]["pass_rate.error"], rows["s2"]["pass_rate.pass_rate"]) == ("error", "image_corrupt", None)
    assert (rows["s3"]["pass_rate@ext.pass_rate"], rows["s3"]["pass_rate@ext.model_id"]) == (1.0, "ext-model")
    prov = manifest["sources"]["pass_rate@ext"]["provenance"]
    assert prov["model_id"] == "ext-model" and len(prov["config_hash"]) == 16 and prov["seed"] is None  # a foreign file: its bytes' hash
    assert manifest["sources"]["pass_rate"]["provenance"] == {"model_id": "tiny", "config_hash": "g1", "seed": 3, "gradus_version": "0.1.0"}


@pytest.mark.parametrize("rows, match", [
    ([pism_row("s0", 0.0, "easy", True)], "unsolved but has bucket"),
    ([pism_row("s0", 0.5, "medium")], r"bucket 'medium' \(expected one of"),
    ([pism_row("s0", 0.5, "mid"), pism_row("s0", 0.5, "mid")], r"duplicate ids \['s0'\]"),
    ([pism_row("s0", 0.5, "mid"), pism_row("s1", 0.5, "mid", model_id="other")], r"mix runs \(model_id"),
])
def test_inconsistent_scores_are_refused(tmp_path, samples, rows, match):
    with pytest.raises((ValueError, ConfigError), match=match):
        build_store(tmp_path / "store", {"pism": ScoreSource(str(write_job_dir(tmp_path / "bad", rows)))}, samples=str(samples))
    assert not (tmp_path / "store").exists()


def test_not_a_scores_file_and_config_mistakes(tmp_path, samples):
    not_pism = tmp_path / "x.parquet"
    pd.DataFrame({"id": ["s0"], "rho_bar": [0.2]}).to_parquet(not_pism, index=False)
    with pytest.raises(ValueError, match=r"not a pism scores file: missing columns \['lambda_star', 'bucket', 'unsolved', 'error'\]"):
        build_store(tmp_path / "store", {"pism": ScoreSource(str(not_pism))}, samples=str(samples))
    with pytest.raises(ValueError, match="not a pass-rate file"):
        build_store(tmp_path / "store", {"pass_rate": ScoreSource(str(not_pism), model_id="m")}, samples=str(samples))
    pism = ScoreSource(str(pism_dir(tmp_path)))
    with pytest.raises(ConfigError, match="namespace 'pism@a.b'"):
        build_store(tmp_path / "store", {"pism@a.b": pism}, samples=str(samples))
    with pytest.raises(ConfigError, match="namespace 'lambda'"):
        build_store(tmp_path / "store", {"lambda": pism}, samples=str(samples))
    with pytest.raises(ConfigError, match=r"partition_by: 'cmab.stratum' is not a partitionable column"):
        build_store(tmp_path / "store", {"pism": pism}, samples=str(samples), partition_by=["cmab.stratum"])
    with pytest.raises(ConfigError, match="samples is required for a new store"):
        build_store(tmp_path / "store", {"pism": pism})
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="is not a difficulty store"):
        build_store(tmp_path / "busy", {"pism": pism}, samples=str(samples))
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(StoreConfig, None, ["sources.pism.paht=x"])


def test_run_store_from_the_default_config(tmp_path, samples):
    cfg = load_config(StoreConfig, REPO / "configs" / "store" / "default.yaml",
                      [f"samples={samples}", f"output={tmp_path / 'store'}", f"sources.pism.path={pism_dir(tmp_path)}",
                       f"sources.cmab@tiny.path={cmab_dir(tmp_path)}", "partition_by=[domain, pism.stratum]"])
    summary = run_store(cfg)
    assert summary["rows"] == 8 and summary["unmatched_rows"] == 1 and len(summary["config_hash"]) == 16
    assert summary["sources"]["cmab@tiny"]["strata"] == {"easy": 1, "error": 1, "hard": 1, "mid": 1, "unscored": 3, "unsolved": 1}
    assert "cmab@tiny.rho_bar" in read_manifest(tmp_path / "store")["columns"]
    again = run_store(cfg)  # the same command twice: the same store, a refresh
    assert again["sources"]["pism"]["status"] == "refreshed" and read_store(tmp_path / "store").num_rows == 8
    assert again["config_hash"] == summary["config_hash"]
    extended = run_store(load_config(StoreConfig, None, [f"output={tmp_path / 'store'}", f"sources.pism@b.path={pism_dir(tmp_path, 'b', model_id='b')}"]))
    assert extended["config_hash"] != summary["config_hash"] and extended["partition_by"] == ["domain", "pism.stratum"]
    assert load_config(StoreConfig, REPO / "configs" / "store" / "pism_cmab.yaml").partition_by == ["domain", "pism.stratum"]
