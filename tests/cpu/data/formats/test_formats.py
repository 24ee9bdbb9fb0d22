"""Format adapters on files shaped like the real ones: mapping, round trips, hostile records."""
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from engine.data.formats import read_records, write_records
from engine.data.images import ImagePolicy
from engine.data.sample import ImageRef, Message, Sample


def png(color="red", size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def root(tmp_path):
    d = tmp_path / "images"
    d.mkdir()
    (d / "a.png").write_bytes(png("red"))
    (d / "b.png").write_bytes(png("blue"))
    (d / "bad.png").write_bytes(b"\x89PNG garbage")
    (tmp_path / "outside.png").write_bytes(png())
    return d


def write_lines(path, lines):
    with open(path, "wb") as fh:
        for line in lines:
            fh.write((json.dumps(line) if isinstance(line, dict) else line).encode() if not isinstance(line, bytes) else line)
            fh.write(b"\n")
    return path


def reasons(bad):
    return sorted(q.reason for q in bad)


# ---------- readers ----------

def test_difficulty_sampling_reader(tmp_path, root):
    f = write_lines(tmp_path / "ds.jsonl", [
        {"id": "q1", "ability": "math", "prompt": "What is x?", "ground_truth": "\\boxed{4}", "image_paths": ["a.png"]},
        {"id": "q2", "ability": "ocr", "prompt": "<image>Read it.", "ground_truth": "HELLO", "image_paths": ["b.png"]},
        b"\xff\xfe not utf8",
        "{not json",
        {"id": "q3", "ability": "math", "prompt": "Missing truth", "image_paths": ["a.png"]},
        {"id": "q4", "ability": "math", "prompt": "escape", "ground_truth": "1", "image_paths": ["../outside.png"]},
        {"id": "q5", "ability": "math", "prompt": "abs", "ground_truth": "1", "image_paths": ["/etc/hostname"]},
        {"id": "q6", "ability": "math", "prompt": "gone", "ground_truth": "1", "image_paths": ["nope.png"]},
        {"id": "q7", "ability": "math", "prompt": "corrupt", "ground_truth": "1", "image_paths": ["bad.png"]},
        {"id": "q8", "ability": "math", "prompt": "<image><image>two", "ground_truth": "1", "image_paths": ["a.png"]},
        {"id": "q9", "ability": "math", "prompt": ["wrong type"], "ground_truth": "1", "image_paths": ["a.png"]},
    ])
    good, bad = read_records("difficulty_sampling", f, ImagePolicy(roots=(str(root),)))
    assert [s.id for s in good] == ["q1", "q2"]
    q1 = good[0]
    assert q1.answer == "4" and q1.meta["difficulty_sampling"]["ground_truth_wrapper"] == {"prefix": "\\boxed{", "suffix": "}"}
    assert q1.messages == [Message("user", "<image>\nWhat is x?")]
    assert q1.images[0].bytes == (root / "a.png").read_bytes()  # embedded: shards are self-contained
    assert reasons(bad) == sorted([
        "text_not_utf8", "bad_json", "missing_field", "image_path_escape", "image_path_escape",
        "image_missing", "image_corrupt", "image_placeholder_mismatch", "bad_field_type",
    ])
    assert all(":" in q.source for q in bad)


def test_curr_reft_reader(tmp_path, root):
    f = write_lines(tmp_path / "detection_coco_test.jsonl", [
        {"problem": "Output the bounding box of the dog.", "solution": "<answer>[10, 20, 30, 40]</answer>", "task": "detection", "image": "a.png"},
        {"problem": "What objects are shown?", "solution": "<answer>cat, dog</answer>", "task": "classification", "image": "b.png"},
        {"problem": "Compute 1/2 + 1/4.", "solution": "<answer>\\boxed{\\frac{3}{4}}</answer>", "task": "math", "image": "a.png"},
        {"problem": "no solution", "task": "math", "image": "a.png"},
    ])
    good, bad = read_records("curr_reft", f, ImagePolicy(roots=(str(root),)))
    assert [(s.task, s.verifier, s.answer) for s in good] == [
        ("detection", "iou", "[10, 20, 30, 40]"), ("classification", "labels", "cat, dog"), ("math", "math", "\\frac{3}{4}"),
    ]
    assert good[0].verifier_params == {"threshold": 0.5, "scale": "pixel", "image_size": [40, 30]}  # pixels of a.png
    assert good[2].meta["curr_reft"]["solution_wrapper"] == {"prefix": "<answer>\\boxed{", "suffix": "}</answer>"}
    assert reasons(bad) == ["missing_field"]


def test_swift_reader_keeps_extra_columns(tmp_path, root):
    f = write_lines(tmp_path / "grpo.jsonl", [
        {"images": [str(root / "a.png")], "messages": [{"role": "user", "content": "<image>\nWhere is the picture from?"}], "solution": "\\boxed{Google}", "rho": 0.3},
        {"images": ["a.png"], "messages": [{"role": "user"}], "solution": "x"},
        {"images": ["a.png"], "messages": [{"role": "wizard", "content": "<image>hi"}], "solution": "x"},
    ])
    good, bad = read_records("swift", f, ImagePolicy(roots=(str(root),)))
    assert len(good) == 1 and good[0].answer == "Google" and good[0].meta["swift"]["extra"] == {"rho": 0.3}
    assert reasons(bad) == ["bad_role", "missing_field"]


def _vtriune_table(rows):
    return pa.Table.from_pylist(rows)


def test_vtriune_reader(tmp_path):
    rows = [
        {
            "data_source": "v3det_train", "images": [{"bytes": png(), "path": "v3det/1.jpg"}],
            "prompt": [{"role": "user", "content": "<image>Locate every dog. Output boxes."}], "ability": "detection",
            "reward_model": {"answer": "", "ground_truth": "[{'bbox_2d': [1, 2, 30, 20], 'label': 'dog'}]", "accuracy_ratio": 1.0,
                             "format_ratio": 0.1, "verifier": "detection", "verifier_parm": json.dumps({"det_verifier_normalized": True})},
            "extra_info": {"id": "v3det-1", "image_path": "v3det/1.jpg"},
        },
        {
            "data_source": "mmk12", "images": [{"bytes": png("blue"), "path": "m/2.png"}],
            "prompt": [{"role": "user", "content": "<image>Solve. Put the answer in \\boxed{}."}], "ability": "math",
            "reward_model": {"answer": "", "ground_truth": "12", "accuracy_ratio": 1.0, "format_ratio": 0.1, "verifier": "mathverify", "verifier_parm": ""},
            "extra_info": {"id": "mmk12-2", "image_path": "m/2.png"},
        },
        {
            "data_source": "mmk12", "images": [{"bytes": b"junk", "path": "m/3.png"}],
            "prompt": [{"role": "user", "content": "<image>?"}], "ability": "math",
            "reward_model": {"answer": "", "ground_truth": "1", "accuracy_ratio": 1.0, "format_ratio": 0.1, "verifier": "mathverify", "verifier_parm": "{oops"},
            "extra_info": {"id": "mmk12-3", "image_path": "m/3.png"},
        },
    ]
    f = tmp_path / "orsta.parquet"
    pq.write_table(_vtriune_table(rows), f)
    good, bad = read_records("vtriune", f, ImagePolicy())
    assert [(s.id, s.task, s.verifier, s.domain) for s in good] == [("v3det-1", "detection", "detection", "v3det"), ("mmk12-2", "math", "math", "mmk12")]
    assert good[0].verifier_params == {"det_verifier_normalized": True, "gt_scale": "thousand", "pred_scale": "resized", "image_size": [40, 30]}
    kept = good[0].meta["vtriune"]
    assert kept["reward_model"]["format_ratio"] == 0.1 and kept["extra_info"]["image_path"] == "v3det/1.jpg"
    assert reasons(bad) == ["bad_json"]


def test_unreadable_parquet_is_quarantined(tmp_path):
    f = tmp_path / "broken.parquet"
    f.write_bytes(b"PAR1 this is not parquet")
    good, bad = read_records("vtriune", f, ImagePolicy())
    assert good == [] and len(bad) == 1


# ---------- writers and round trips ----------

def _samples():
    return [
        Sample("s-1", [ImageRef(png("red"))], [Message("system", "Be brief."), Message("user", "<image>What color?")], "red", "color", "exact",
               {"normalize": True}, "perception", "gradus-synth", "train", {"level": 1, "difficulty": {"pism_bucket": "mid"}}),
        Sample("s/2", [ImageRef(png("blue")), ImageRef(png("green"))], [Message("user", "<image>vs<image>: how many?")], "2", "counting", "numeric",
               {"tolerance": 0}, "perception", "gradus-synth", "test", {"level": 3}),
    ]


def _same(a: Sample, b: Sample):
    assert (a.id, a.messages, a.answer, a.task, a.verifier, a.verifier_params, a.domain, a.split) == \
           (b.id, b.messages, b.answer, b.task, b.verifier, b.verifier_params, b.domain, b.split)
    assert [r.bytes for r in a.images] == [r.bytes for r in b.images]


def test_verl_round_trip_and_row_shape(tmp_path):
    out = tmp_path / "train.parquet"
    write_records("verl", _samples(), out)
    table = pq.read_table(out)
    row = table.to_pylist()[0]
    assert row["reward_model"] == {"style": "rule", "ground_truth": "red"}
    assert row["extra_info"]["index"] == 0 and json.loads(row["extra_info"]["difficulty"]) == {"pism_bucket": "mid"}
    assert row["prompt"][0]["role"] == "system"
    for r in table.to_pylist():  # verl asserts one literal <image> per image
        assert sum(m["content"].count("<image>") for m in r["prompt"]) == len(r["images"])
    good, bad = read_records("verl", out, ImagePolicy())
    assert bad == []
    for a, b in zip(_samples(), good):
        _same(a, b)
    assert good[0].meta["difficulty"] == {"pism_bucket": "mid"}


def test_swift_round_trip(tmp_path):
    out = tmp_path / "swift" / "grpo.jsonl"
    write_records("swift", _samples(), out)
    line = json.loads(out.read_text().splitlines()[0])
    assert line["solution"] == "red" and line["images"][0].endswith(".png")  # bare: what gradus verifiers compare
    good, bad = read_records("swift", out, ImagePolicy(roots=(str(out.parent),)))
    assert bad == []
    for a, b in zip(_samples(), good):
        _same(a, b)


def test_llamafactory_export(tmp_path):
    out = tmp_path / "lf" / "sft.jsonl"
    paths = write_records("llamafactory", _samples(), out)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert rows[0]["messages"][-1] == {"role": "assistant", "content": "\\boxed{red}"}
    assert [m["role"] for m in rows[1]["messages"]] == ["user", "assistant"]
    for r in rows:
        assert sum(m["content"].count("<image>") for m in r["messages"]) == len(r["images"])
        for p in r["images"]:
            Image.open(out.parent / p).verify()  # relative to the dataset dir (LLaMA-Factory's media_dir)
    info = json.loads((out.parent / "dataset_info.json").read_text())
    entry = info["gradus_sft"]
    assert entry["file_name"] == "sft.jsonl" and entry["formatting"] == "sharegpt"
    assert entry["columns"] == {"messages": "messages", "images": "images"}
    assert entry["tags"]["assistant_tag"] == "assistant" and out.parent / "dataset_info.json" in paths


def test_unknown_formats_are_clear_errors(tmp_path):
    with pytest.raises(KeyError, match="unknown input format"):
        read_records("parquetish", tmp_path, ImagePolicy())
    with pytest.raises(KeyError, match="unknown output format"):
        write_records("csv", [], tmp_path / "x")
