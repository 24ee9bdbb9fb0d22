"""LLaMA-Factory sharegpt JSONL + dataset_info.json: the structure LLaMA-Factory loads, real image files."""
import json

import pytest
from PIL import Image

from engine.data.formats import write_records
from engine.data.reasons import Reason, SampleError
from engine.data.sample import ImageRef, Message, Sample

from format_fixtures import jpeg, png


def _samples():
    return [
        Sample("s-1", [ImageRef(png("red"))], [Message("system", "Be brief."), Message("user", "<image>What color?")], "red", "color", "exact"),
        Sample("s-2", [ImageRef(jpeg()), ImageRef(png("green"))], [Message("user", "<image><image>How many?")], "2", "counting", "numeric",
               split="val"),
        Sample("s-3", [], [Message("user", "2+2?"), Message("assistant", "4, I think")], "4", "math", "math"),
    ]


def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_jsonl_dataset_info_and_images(tmp_path):
    out = tmp_path / "lf"
    paths = write_records("llamafactory", _samples(), out)
    assert paths == [out / "train.jsonl", out / "val.jsonl", out / "dataset_info.json"]
    train, val = _rows(paths[0]), _rows(paths[1])

    assert train[0]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "<image>What color?"},
        {"role": "assistant", "content": "\\boxed{red}"},  # default template
    ]
    assert train[1]["messages"][-1] == {"role": "assistant", "content": "\\boxed{4}"}  # answer, not the old response
    assert [m["role"] for m in train[1]["messages"]] == ["user", "assistant"]
    for row in train + val:
        assert sum(m["content"].count("<image>") for m in row["messages"]) == len(row["images"])
        for rel in row["images"]:
            assert not rel.startswith("/")  # relative to the dataset dir, LLaMA-Factory's media_dir
            with Image.open(out / rel) as img:
                img.load()
    assert [p.rsplit(".", 1)[-1] for p in val[0]["images"]] == ["jpg", "png"]

    info = json.loads(paths[2].read_text())
    assert set(info) == {"gradus_train", "gradus_val"}
    entry = info["gradus_val"]
    assert entry["file_name"] == "val.jsonl" and entry["formatting"] == "sharegpt"
    assert entry["columns"] == {"messages": "messages", "images": "images"}
    assert entry["tags"] == {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant", "system_tag": "system"}


def test_template_and_existing_dataset_info_is_extended(tmp_path):
    (tmp_path / "dataset_info.json").write_text(json.dumps({"mllm_demo": {"file_name": "mllm_demo.json"}}))
    write_records("llamafactory", _samples()[:1], tmp_path / "sft.jsonl", template="<answer>{answer}</answer>", dataset_name="mine")
    assert _rows(tmp_path / "sft.jsonl")[0]["messages"][-1]["content"] == "<answer>red</answer>"
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert set(info) == {"mllm_demo", "mine_sft"}


def test_unreadable_dataset_info_is_not_clobbered(tmp_path):
    (tmp_path / "dataset_info.json").write_text("{ not json")
    with pytest.raises(ValueError, match="not overwriting"):
        write_records("llamafactory", _samples()[:1], tmp_path / "sft.jsonl")
    assert (tmp_path / "dataset_info.json").read_text() == "{ not json"
    assert not (tmp_path / "sft.jsonl").exists()  # refused before writing anything


def test_turns_sharegpt_cannot_hold_are_refused(tmp_path):
    bad = Sample("two-users", [], [Message("user", "a"), Message("user", "b")], "x", "t", "exact")
    with pytest.raises(SampleError) as info:
        write_records("llamafactory", [bad], tmp_path / "x.jsonl")
    assert info.value.reason == Reason.BAD_ROLE
