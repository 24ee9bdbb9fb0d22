"""A quarantined record keeps its id: image paths are checked while a record is parsed, before it is a
sample, and the quarantine record must still say which record it was (not only "file:line")."""
import pytest

from engine.data.formats import read_records
from engine.data.reasons import Reason

from format_fixtures import VTRIUNE_SCHEMA, vtriune_math_row, write_jsonl, write_parquet


def _ds(rid, image):
    return {"id": rid, "ability": "counting", "prompt": "How many dots?", "ground_truth": "3", "image_paths": [image]}


def _curr(rid, image):
    return {"id": rid, "problem": "How many dots?", "solution": "<answer>3</answer>", "task": "math", "image": image}


def _swift(rid, image):
    return {"id": rid, "images": [image], "messages": [{"role": "user", "content": "<image>How many dots?"}], "solution": "3"}


def _vtriune(rid, image):
    return vtriune_math_row(images=[{"bytes": None, "path": image}], extra_info={"id": rid, "image_path": None})


def _verl(rid, image):
    return {"data_source": "geo3k", "prompt": [{"role": "user", "content": "<image>Find x."}], "images": [{"bytes": None, "path": image}],
            "ability": "math", "reward_model": {"style": "rule", "ground_truth": "3"}, "extra_info": {"index": 7, "id": rid}}


# format -> (record builder, writer)
FORMATS = {
    "difficulty_sampling": (_ds, lambda path, rows: write_jsonl(path.with_suffix(".jsonl"), rows)),
    "curr_reft": (_curr, lambda path, rows: write_jsonl(path.with_suffix(".jsonl"), rows)),
    "swift": (_swift, lambda path, rows: write_jsonl(path.with_suffix(".jsonl"), rows)),
    "vtriune": (_vtriune, lambda path, rows: write_parquet(path.with_suffix(".parquet"), rows, VTRIUNE_SCHEMA)),
    "verl": (_verl, lambda path, rows: write_parquet(path.with_suffix(".parquet"), rows)),
}

# case -> (image reference, built from the test's tmp folder; expected reason)
CASES = {
    "escape_relative": (lambda tmp: "../secret.png", Reason.IMAGE_PATH_ESCAPE),
    "escape_absolute": (lambda tmp: str(tmp / "secret.png"), Reason.IMAGE_PATH_ESCAPE),
    "remote_url": (lambda tmp: "http://example.com/a.png", Reason.IMAGE_PATH_ESCAPE),
    "missing": (lambda tmp: "nope.png", Reason.IMAGE_MISSING),
    "symlink_loop": (lambda tmp: "loop.png", Reason.IMAGE_MISSING),
}


@pytest.mark.parametrize("embed_images", [True, False], ids=["embed", "paths"])
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_image_path_quarantine_names_the_record(fmt, case, embed_images, tmp_path, policy):
    make, write = FORMATS[fmt]
    image, reason = CASES[case]
    path = write(tmp_path / "data", [make("good-1", "a.png"), make("bad-7", image(tmp_path)), make("good-2", "a.png")])
    samples, quarantine = read_records(fmt, path, policy, decode=embed_images, embed_images=embed_images)
    assert [s.id for s in samples] == ["good-1", "good-2"]
    assert [(q.reason, q.record_id) for q in quarantine] == [(reason.value, "bad-7")]


def test_a_record_without_an_id_is_named_as_its_sample_would_be(tmp_path, policy):
    """Foreign verl rows carry no gradus id: the quarantine names the id the sample would have had."""
    rows = [dict(_verl(None, "nope.png"), extra_info={"index": 41}), dict(_verl(None, "a.png"), extra_info={"index": 42})]
    path = write_parquet(tmp_path / "geo3k_test.parquet", rows)
    (sample,), (bad,) = read_records("verl", path, policy)
    assert sample.id == "geo3k-geo3k_test-42"
    assert (bad.reason, bad.record_id) == (Reason.IMAGE_MISSING.value, "geo3k-geo3k_test-41")


def test_unparseable_lines_have_no_id_to_give(tmp_path, policy):
    path = write_jsonl(tmp_path / "d.jsonl", [b'{"id": "cut", "prompt": ', _ds("ok", "a.png")])
    samples, (bad,) = read_records("difficulty_sampling", path, policy)
    assert [s.id for s in samples] == ["ok"]
    assert (bad.reason, bad.record_id) == (Reason.BAD_JSON.value, "")


def test_other_parse_errors_name_the_record_too(tmp_path, policy):
    """Not only image paths: any record that fails while parsing keeps the id it carries."""
    bad_type = dict(_swift("typed-3", "a.png"), messages="hi")
    unsolved = {"id": "nosol-4", "images": [], "messages": [{"role": "user", "content": "Q?"}]}  # no solution, no assistant turn
    path = write_jsonl(tmp_path / "s.jsonl", [bad_type, unsolved])
    samples, quarantine = read_records("swift", path, policy)
    assert samples == []
    assert [(q.reason, q.record_id) for q in quarantine] == [(Reason.BAD_FIELD_TYPE.value, "typed-3"), (Reason.MISSING_FIELD.value, "nosol-4")]
