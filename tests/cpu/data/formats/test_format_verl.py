"""verl RL parquet: the row shape verl 0.9.1 expects, round trips, foreign verl files, and the hand-off
to verl's own RLHFDataset with a real processor."""
import json

import pyarrow.parquet as pq
import pytest

from engine.data.formats import read_records, write_records
from engine.data.images import ImagePolicy
from engine.data.sample import ImageRef, Message, Sample

from format_fixtures import png, write_parquet


def _samples(image_root=None):
    path_image = ImageRef(path="a.png") if image_root else ImageRef(png("yellow"))
    return [
        Sample("syn-1", [ImageRef(png("red"))], [Message("system", "Be brief."), Message("user", "<image>What color?")], "red", "color",
               "exact", {"normalize": True}, "perception", "gradus-synth", "train", {"level": 1, "difficulty": {"pism": 0.3, "bucket": "mid"}}),
        Sample("syn-2", [ImageRef(png("blue")), path_image], [Message("user", "<image> vs <image>: how many?")], "2", "counting",
               "numeric", {"tolerance": 0}, "perception", "", "val", {}),
        # SFT-style sample: the trailing assistant turn is not part of an RL prompt
        Sample("syn-3", [], [Message("user", "2+2?"), Message("assistant", "\\boxed{4}")], "4", "math", "math", split="train"),
    ]


def test_row_shape(tmp_path, image_root, policy):
    (path,) = write_records("verl", _samples(image_root)[:2], tmp_path / "rl.parquet", policy=policy, max_pixels=12544)
    table = pq.read_table(path)
    assert table.schema.names == ["data_source", "prompt", "images", "ability", "reward_model", "extra_info"]
    first, second = table.to_pylist()
    assert first["data_source"] == "gradus-synth" and second["data_source"] == "gradus"  # never empty
    assert first["prompt"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "<image>What color?"}]
    assert first["ability"] == "color"
    assert first["reward_model"] == {"style": "rule", "ground_truth": "red"}
    info = first["extra_info"]
    assert info["index"] == 0 and isinstance(info["index"], int)
    assert (info["id"], info["task"], info["verifier"], info["domain"], info["split"]) == ("syn-1", "color", "exact", "perception", "train")
    assert json.loads(info["verifier_params"]) == {"normalize": True}
    assert json.loads(info["difficulty"]) == {"pism": 0.3, "bucket": "mid"}
    assert json.loads(info["meta"]) == {"level": 1}
    assert json.loads(second["extra_info"]["difficulty"]) is None
    for row in (first, second):  # verl asserts one literal <image> per image
        assert sum(m["content"].count("<image>") for m in row["prompt"]) == len(row["images"])
        assert all(img["bytes"] and img["max_pixels"] == 12544 for img in row["images"])
    # a path-only image was embedded: the file is self-contained
    assert second["images"][1] == {"bytes": (image_root / "a.png").read_bytes(), "path": "a.png", "max_pixels": 12544}


def test_one_file_per_split_and_round_trip(tmp_path):
    paths = write_records("verl", _samples(), tmp_path / "verl")
    assert [p.name for p in paths] == ["train.parquet", "val.parquet"]
    assert pq.read_table(paths[0]).column("extra_info").to_pylist()[1]["index"] == 1  # index per file
    samples, quarantine = read_records("verl", tmp_path / "verl", ImagePolicy())
    assert quarantine == []
    by_id = {s.id: s for s in samples}
    for original in _samples():
        back = by_id[original.id]
        assert [r.bytes for r in back.images] == [r.bytes for r in original.images]
        assert back.messages == original.prompt_messages
        back.images, back.messages = original.images, original.messages
        assert back == original


def test_reads_a_foreign_verl_file(tmp_path):
    """A geo3k-style file from verl's own preprocessing: no gradus fields in extra_info."""
    path = write_parquet(tmp_path / "geo3k_test.parquet", [
        {"data_source": "hiyouga/geometry3k", "prompt": [{"role": "user", "content": "<image>Find x. Put the answer in \\boxed{}."}],
         "images": [{"bytes": png(), "path": None}], "ability": "math", "reward_model": {"style": "rule", "ground_truth": "3"},
         "extra_info": {"split": "test", "index": 41, "answer": "3", "question": "Find x.", "difficulty": "hard"}},
    ])
    (sample,), quarantine = read_records("verl", path, ImagePolicy())
    assert quarantine == []
    assert sample.id == "hiyouga/geometry3k-geo3k_test-41"
    assert (sample.answer, sample.task, sample.verifier, sample.source, sample.split) == ("3", "math", "math", "hiyouga/geometry3k", "test")
    assert sample.meta == {"difficulty": "hard", "verl": {"extra_info": {"index": 41, "answer": "3", "question": "Find x."}}}

    (forced,), _ = read_records("verl", path, ImagePolicy(), verifier="numeric")
    assert forced.verifier == "numeric"


def test_rlhf_dataset_loads_what_we_write(tmp_path, tiny_random_model, monkeypatch):
    """The real hand-off: verl's RLHFDataset + a Qwen2.5-VL processor keeps every row (a processor
    error would silently filter all rows out: "filter dataset len: 0")."""
    datasets = pytest.importorskip("datasets")
    rl_dataset = pytest.importorskip("verl.utils.dataset.rl_dataset")
    from omegaconf import OmegaConf
    from transformers import AutoProcessor, AutoTokenizer

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    (path,) = write_records("verl", _samples()[:2], tmp_path / "rl.parquet")
    config = OmegaConf.create({"cache_dir": str(tmp_path / "verl-cache"), "max_prompt_length": 1024, "filter_overlong_prompts": True,
                               "filter_overlong_prompts_workers": None})  # in-process: a forked filter worker hangs once torch threads ran in this process
    dataset = rl_dataset.RLHFDataset([str(path)], AutoTokenizer.from_pretrained(tiny_random_model), config,
                                     AutoProcessor.from_pretrained(tiny_random_model))
    assert len(dataset) == 2
    item = dataset[1]
    assert item["extra_info"]["id"] == "syn-2" and json.loads(item["extra_info"]["verifier_params"]) == {"tolerance": 0}
    parts = item["raw_prompt"][0]["content"]
    assert [p["type"] for p in parts] == ["image", "text", "image", "text"]
    batch = rl_dataset.collate_fn([dataset[0], dataset[1]])
    assert list(batch["reward_model"][0].values()) == ["rule", "red"]
