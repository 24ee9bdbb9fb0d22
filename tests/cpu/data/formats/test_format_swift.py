"""ms-swift GRPO JSONL: reader mapping, writer layout, and round trips back to equal samples."""
import base64
import json

from PIL import Image

from engine.data.formats import read_records, write_records
from engine.data.images import ImagePolicy
from engine.data.sample import ImageRef, Message, Sample

from format_fixtures import jpeg, png, write_jsonl


def _images(samples):
    return [[r.bytes for r in s.images] for s in samples]


def test_reads_the_difficulty_sampling_grpo_layout(tmp_path, image_root, policy):
    path = write_jsonl(tmp_path / "VRT_0.1-0.4_and_1.6-1.9.jsonl", [
        # the README's example, with an absolute path under the root and their task_type column
        {"images": [str(image_root / "a.png")], "messages": [{"role": "user", "content": "<image>\nWhere is the picture from?"}],
         "solution": "\\boxed{Google}", "task_type": "ocr"},
        # SFT-style record: no solution, the answer is the final assistant turn; base64 image bytes
        {"images": [{"bytes": base64.b64encode(png("blue")).decode()}],
         "messages": [{"role": "system", "content": "Think first."}, {"role": "user", "content": "<image>Colour?"},
                      {"role": "assistant", "content": "<answer>blue</answer>"}]},
    ])
    (first, second), quarantine = read_records("swift", path, policy)
    assert quarantine == []
    assert first.id == "swift-VRT_0.1-0.4_and_1.6-1.9-1"
    assert (first.answer, first.task, first.verifier, first.source) == ("Google", "ocr", "ocr", "swift")
    assert first.meta["swift"] == {"solution_wrapper": {"prefix": "\\boxed{", "suffix": "}"}, "extra": {"task_type": "ocr"}}
    assert first.images[0].bytes == (image_root / "a.png").read_bytes()
    assert (second.answer, second.task, second.verifier) == ("blue", "general", "exact")
    assert [m.role for m in second.messages] == ["system", "user", "assistant"]
    assert second.images[0].bytes == png("blue")


def _samples():
    return [
        Sample("syn-1", [ImageRef(png("red"))], [Message("system", "Be brief."), Message("user", "<image>What color?")], "red",
               "color", "exact", {"normalize": True}, "perception", "gradus-synth", "train", {"level": 2, "difficulty": {"pism": 0.4}}),
        Sample("needs/escaping id", [ImageRef(jpeg()), ImageRef(png("green"))], [Message("user", "<image> and <image>: how many?")], "2",
               "counting", "numeric", {"tolerance": 0}, "perception", "", "val", {}),
    ]


def test_round_trip_to_equal_samples(tmp_path):
    paths = write_records("swift", _samples(), tmp_path / "swift")
    assert [p.name for p in paths] == ["train.jsonl", "val.jsonl"]
    row = json.loads(paths[0].read_text().splitlines()[0])
    assert row["solution"] == "red" and row["task"] == "color" and row["verifier"] == "exact"
    assert json.loads(row["verifier_params"]) == {"normalize": True}
    assert all(Image.open(p).size == (16, 16) for p in row["images"])  # absolute paths, real files
    second = json.loads(paths[1].read_text())
    assert [p.rsplit(".", 1)[-1] for p in second["images"]] == ["jpg", "png"]

    samples, quarantine = read_records("swift", tmp_path / "swift", ImagePolicy(roots=(str(tmp_path / "swift"),)))
    assert quarantine == []
    by_id = {s.id: s for s in samples}
    for original in _samples():
        back = by_id[original.id]
        assert _images([back]) == _images([original])
        back.images = original.images  # paths differ (now files on disk); everything else is equal
        assert back == original


def test_foreign_file_round_trips_through_gradus(tmp_path, image_root, policy):
    """Extra columns and the solution wrapper survive read -> write -> read."""
    path = write_jsonl(tmp_path / "in.jsonl", [
        {"images": ["a.png"], "messages": [{"role": "user", "content": "<image>How many?"}], "solution": "<answer>3</answer>",
         "task": "counting", "rho": 0.3, "tags": ["mid"]},
    ])
    first, quarantine = read_records("swift", path, policy)
    assert quarantine == []
    out = write_records("swift", first, tmp_path / "out" / "grpo.jsonl")
    row = json.loads(out[0].read_text())
    assert row["rho"] == 0.3 and row["tags"] == ["mid"] and row["solution"] == "3"
    again, quarantine = read_records("swift", out[0], ImagePolicy())  # default root: the file's folder
    assert quarantine == []
    assert _images(again) == _images(first)
    again[0].images = first[0].images
    assert again == first


def test_solution_template_for_swift_rewards(tmp_path):
    out = write_records("swift", _samples()[:1], tmp_path / "g.jsonl", solution_template="\\boxed{{{answer}}}", relative_image_paths=True)
    row = json.loads(out[0].read_text())
    assert row["solution"] == "\\boxed{red}"
    assert row["images"] == ["images/syn-1-0.png"]
    (back,), _ = read_records("swift", out[0], ImagePolicy())
    assert back.answer == "red"
