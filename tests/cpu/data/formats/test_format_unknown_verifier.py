"""A record naming a verifier gradus does not have is quarantined at conversion (`unknown_verifier`),
with its id; the rows around it still convert. Scoring such a row would otherwise fail at the first
verify call, far from the data."""
import json

import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from engine.data.formats import read_records
from engine.data.images import ImagePolicy
from engine.data.reasons import Reason
from engine.data.shards import read_table

from format_fixtures import VTRIUNE_SCHEMA, png, vtriune_math_row, write_jsonl, write_parquet


def _verl(rid, verifier="math"):
    return {"data_source": "geo3k", "prompt": [{"role": "user", "content": "<image>Find x."}], "images": [{"bytes": png(), "path": None}],
            "ability": "math", "reward_model": {"style": "rule", "ground_truth": "3"},
            "extra_info": {"index": 0, "id": rid, "task": "math", "verifier": verifier, "verifier_params": "{}"}}


def _verl_file(tmp_path):
    return write_parquet(tmp_path / "rl.parquet", [_verl("ok-0"), _verl("typo-1", verifier="mathh"), _verl("ok-2", verifier="numeric")])


def test_verl_row_with_an_unknown_verifier_is_quarantined(tmp_path):
    path = _verl_file(tmp_path)
    samples, quarantine = read_records("verl", path, ImagePolicy())
    assert [(s.id, s.verifier) for s in samples] == [("ok-0", "math"), ("ok-2", "numeric")]
    (bad,) = quarantine
    assert (bad.reason, bad.record_id, bad.source) == (Reason.UNKNOWN_VERIFIER.value, "typo-1", f"{path}:row 1")
    assert "'mathh'" in bad.detail and "math" in bad.detail  # says what was asked for and what exists


def test_data_convert_from_verl_quarantines_the_row(tmp_path, capsys):
    path = _verl_file(tmp_path)
    assert main(["data", "convert", "--from", "verl", "--input", str(path), "--out", str(tmp_path / "out")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["samples"], summary["quarantined"], summary["reasons"]) == (2, 1, {"unknown_verifier": 1})
    assert read_table(tmp_path / "out").column("id").to_pylist() == ["ok-0", "ok-2"]
    (row,) = pq.read_table(summary["quarantine_file"]).to_pylist()
    assert (row["reason"], row["record_id"]) == ("unknown_verifier", "typo-1")


def test_swift_verifier_column_is_checked(tmp_path):
    rec = {"images": [{"bytes": None, "path": None}], "messages": [{"role": "user", "content": "Q?"}], "solution": "3"}
    rows = [dict(rec, id="a", images=[], verifier="count"), dict(rec, id="b", images=[], verifier="counting")]
    samples, quarantine = read_records("swift", write_jsonl(tmp_path / "s.jsonl", rows), ImagePolicy())
    assert [s.id for s in samples] == ["a"]
    assert [(q.reason, q.record_id) for q in quarantine] == [(Reason.UNKNOWN_VERIFIER.value, "b")]


def test_vtriune_verifier_names_are_mapped_or_quarantined(tmp_path):
    """Their reward server knows "mathverify" and "detection"; any other name is not guessed from the task."""
    known = vtriune_math_row(extra_info={"id": "known", "image_path": None})
    unknown = vtriune_math_row(extra_info={"id": "theirs", "image_path": None})
    unknown["reward_model"] = dict(unknown["reward_model"], verifier="ocr_reward_v2")
    unnamed = vtriune_math_row(extra_info={"id": "unnamed", "image_path": None})
    unnamed["reward_model"] = dict(unnamed["reward_model"], verifier=None)
    path = write_parquet(tmp_path / "v.parquet", [known, unknown, unnamed], VTRIUNE_SCHEMA)
    samples, quarantine = read_records("vtriune", path, ImagePolicy())
    assert [(s.id, s.verifier) for s in samples] == [("known", "math"), ("unnamed", "math")]  # unnamed: the task's verifier
    assert [(q.reason, q.record_id) for q in quarantine] == [(Reason.UNKNOWN_VERIFIER.value, "theirs")]
    assert "ocr_reward_v2" in quarantine[0].detail


@pytest.mark.parametrize("fmt", ["verl", "swift"])
def test_an_unknown_verifier_option_is_refused_before_reading(fmt, tmp_path):
    with pytest.raises(ValueError, match="unknown_verifier: 'nope' is not a registered verifier"):
        read_records(fmt, tmp_path, ImagePolicy(), verifier="nope")
