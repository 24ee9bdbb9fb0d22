"""The registry and the options every reader/writer shares."""
import pyarrow.parquet as pq
import pytest

from engine.data.formats import READERS, WRITERS, read_records, write_records
from engine.data.images import ImagePolicy
from engine.data.reasons import Reason, SampleError
from engine.data.sample import ImageRef, Message, Sample

from format_fixtures import png, write_jsonl


def test_registry_names():
    assert sorted(READERS) == ["curr_reft", "difficulty_sampling", "swift", "verl", "vtriune"]
    assert sorted(WRITERS) == ["llamafactory", "swift", "verl"]


def test_without_roots_paths_are_confined_to_the_input_folder(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "pic.png").write_bytes(png())
    (tmp_path / "elsewhere.png").write_bytes(png())
    path = write_jsonl(tmp_path / "data" / "ds.jsonl", [
        {"id": "in", "ability": "ocr", "prompt": "Read.", "ground_truth": "A", "image_paths": ["pic.png"]},
        {"id": "out", "ability": "ocr", "prompt": "Read.", "ground_truth": "A", "image_paths": ["../elsewhere.png"]},
    ])
    samples, quarantine = read_records("difficulty_sampling", path)  # no policy at all
    assert [s.id for s in samples] == ["in"]
    assert [q.reason for q in quarantine] == [Reason.IMAGE_PATH_ESCAPE.value]


def test_unknown_options_fail_fast(tmp_path):
    with pytest.raises(TypeError):
        read_records("swift", tmp_path, ImagePolicy(), no_such_option=True)


def test_missing_input_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_records("verl", tmp_path / "absent", ImagePolicy())


def _sample(**over):
    base = dict(id="s1", images=[ImageRef(path="a.png")], messages=[Message("user", "<image>Q?")], answer="1", task="t", verifier="exact")
    return Sample(**{**base, **over})


def test_writers_read_path_images_under_the_given_policy(tmp_path, policy):
    (path,) = write_records("verl", [_sample()], tmp_path / "x.parquet", policy=policy)
    assert pq.read_table(path).to_pylist()[0]["images"][0]["bytes"] == png("red")
    with pytest.raises(SampleError) as info:
        write_records("verl", [_sample()], tmp_path / "y.parquet")  # no roots: nothing may be read
    assert info.value.reason == Reason.IMAGE_PATH_ESCAPE and "s1" in info.value.detail


@pytest.mark.parametrize("fmt", ["verl", "swift", "llamafactory"])
def test_writers_refuse_invalid_samples_before_writing(fmt, tmp_path, policy):
    with pytest.raises(SampleError) as info:
        write_records(fmt, [_sample(split="holdout")], tmp_path / "out", policy=policy)
    assert info.value.reason == Reason.UNKNOWN_SPLIT
    assert not (tmp_path / "out").exists()
    with pytest.raises(SampleError) as info:
        write_records(fmt, [_sample(id="ok"), _sample(id="bad", messages=[Message("user", "no placeholder")])], tmp_path / "out", policy=policy)
    assert info.value.reason == Reason.IMAGE_PLACEHOLDER_MISMATCH and "bad" in info.value.detail
    assert not (tmp_path / "out").exists()  # not even the good sample's file or images


def test_empty_export_still_writes_a_loadable_file(tmp_path):
    (path,) = write_records("verl", [], tmp_path / "verl")
    assert path.name == "train.parquet" and pq.read_table(path).num_rows == 0
