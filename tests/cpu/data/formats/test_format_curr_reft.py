"""Curr-ReFT JSONL -> Sample, with the stage deciding the verifier."""
import pytest

from engine.data.formats import read_records
from engine.data.formats.curr_reft import stage_from_path

from format_fixtures import write_jsonl


def test_open_stage_records(tmp_path, policy):
    path = write_jsonl(
        tmp_path / "grpo_data" / "train" / "open" / "coco_3k_2task" / "detection_coco_train.jsonl",
        [
            {"problem": "Output the bounding box of the dog.", "solution": "<thinking>It is left.</thinking><answer>[10, 20, 30, 40]</answer>",
             "task": "detection", "image": "a.png"},
            {"problem": "Which categories appear?", "solution": "<answer>cat, dog</answer>", "task": "classify", "image": "sub/b.png"},
            {"problem": "<image>Find x.", "solution": "<answer>7</answer>", "task": "math", "image": ["a.png"], "source_id": "geo170k-1"},
        ],
    )
    samples, quarantine = read_records("curr_reft", path, policy)
    assert quarantine == []
    det, cls, math = samples
    assert det.id == "curr_reft-detection_coco_train-1"  # no id in their files: file stem + line
    assert det.messages[0].content == "<image>\nOutput the bounding box of the dog."
    # their reward compares boxes as written, in pixels of the image file (a.png is 16x16)
    assert (det.answer, det.verifier, det.verifier_params) == ("[10, 20, 30, 40]", "iou", {"threshold": 0.5, "scale": "pixel", "image_size": [16, 16]})
    assert det.meta["curr_reft"]["stage"] == "open"
    assert det.meta["curr_reft"]["solution_wrapper"] == {"prefix": "<thinking>It is left.</thinking><answer>", "suffix": "</answer>"}
    assert (cls.answer, cls.verifier, cls.domain, cls.source) == ("cat, dog", "labels", "classify", "curr_reft")
    assert math.messages[0].content == "<image>Find x." and math.verifier == "math"
    assert math.meta["curr_reft"]["source_id"] == "geo170k-1"


def test_judge_and_choice_stages_use_yesno_and_choice_verifiers(tmp_path, policy):
    judge = write_jsonl(tmp_path / "stage1_judge" / "det.jsonl", [
        {"problem": "Is [1, 2, 3, 4] the dog's box? Answer yes or no.", "solution": "answer>yes</answer>", "task": "detection", "image": "a.png"},
    ])
    (sample,), quarantine = read_records("curr_reft", judge, policy)
    assert quarantine == []
    assert (sample.answer, sample.verifier, sample.verifier_params) == ("yes", "yesno", {})
    assert sample.meta["curr_reft"]["stage"] == "judge"

    (forced,), _ = read_records("curr_reft", judge, policy, stage="choice")
    assert forced.meta["curr_reft"]["stage"] == "choice"


def test_stage_inference_looks_only_near_the_file(tmp_path):
    assert stage_from_path(tmp_path / "grpo_data" / "train" / "stage2_multi_choice" / "x.jsonl") == "choice"
    assert stage_from_path(tmp_path / "judge_team" / "a" / "b" / "c" / "x.jsonl") == "open"


def test_unknown_stage_is_refused(tmp_path, policy):
    with pytest.raises(ValueError, match="stage"):
        read_records("curr_reft", tmp_path, policy, stage="final")
