"""V-Triune (Orsta-Data-47k) parquet -> Sample: fields mapped faithfully, the rest kept in meta."""
import json

import pyarrow as pa
import pytest

from engine.data.formats import read_records
from engine.data.formats.vtriune import read_vtriune
from engine.verifiers import verify

from format_fixtures import DET_BOXES, VTRIUNE_SCHEMA, png, vtriune_detection_row, vtriune_math_row, write_parquet


def test_orsta_rows_map_to_samples(tmp_path, image_root, policy):
    path = write_parquet(tmp_path / "train_math_and_det.parquet", [vtriune_math_row(), vtriune_detection_row()], VTRIUNE_SCHEMA)
    samples, quarantine = read_records("vtriune", path, policy)
    assert quarantine == []
    math, det = samples

    assert math.id == "mm_math-train_math_and_det-0"  # their extra_info.id is often null
    assert math.answer == "4"  # reward_model.answer, not the \boxed{} ground truth
    assert (math.task, math.verifier, math.domain, math.source) == ("math", "math", "mm_math", "mm_math")
    assert math.messages[0].role == "user" and math.messages[0].content.startswith("<image>As shown")
    assert math.images[0].bytes == png("white")
    kept = math.meta["vtriune"]
    assert kept["reward_model"]["ground_truth"] == "\\boxed{4}"
    assert kept["reward_model"]["verifier"] == "mathverify"
    assert kept["reward_model"]["accuracy_ratio"] == 1.0 and kept["reward_model"]["format_ratio"] == 0.0
    assert kept["extra_info"] == {"image_path": "images/51284809.png"}
    assert math.verifier_params == {}  # the merged struct column's keys, all null in this row, are dropped

    assert det.id == "v3det-000123"
    assert det.answer == DET_BOXES
    assert (det.task, det.verifier, det.domain, det.source) == ("cv_detection", "detection", "v3det", "v3det_train")
    assert det.verifier_params["det_verifier_normalized"] is True
    assert abs(det.verifier_params["det_reward_ratio"]["iou_completeness"] - 0.3) < 1e-6
    # truth on their 0-1000 grid; det_verifier_normalized: the answer in pixels of the resized a.png (16x16)
    assert {k: det.verifier_params[k] for k in ("gt_scale", "pred_scale", "image_size")} == {"gt_scale": "thousand", "pred_scale": "resized", "image_size": [16, 16]}
    assert abs(det.meta["vtriune"]["reward_model"]["format_ratio"] - 0.1) < 1e-6
    # path-only image: resolved under the root and embedded
    assert det.images[0].path == "a.png" and det.images[0].bytes == (image_root / "a.png").read_bytes()


def test_verifier_parm_as_json_string_and_answer_from_ground_truth(tmp_path, policy):
    row = vtriune_math_row()
    row["reward_model"] = dict(row["reward_model"], answer=None, verifier_parm=json.dumps({"det_verifier_normalized": False}))
    path = write_parquet(tmp_path / "x.parquet", [row])  # inferred schema: verifier_parm is a string column
    (sample,), quarantine = read_vtriune(path, policy)
    assert quarantine == []
    assert sample.answer == "4"  # unwrapped from "\\boxed{4}"
    assert sample.verifier_params == {"det_verifier_normalized": False}


def test_missing_ability_falls_back_to_their_verifier(tmp_path, policy):
    path = write_parquet(tmp_path / "x.parquet", [vtriune_detection_row(ability=None)], VTRIUNE_SCHEMA)
    (sample,), _ = read_vtriune(path, policy)
    assert (sample.task, sample.verifier) == ("detection", "detection")


def test_directory_of_shards_and_split_option(tmp_path, policy):
    write_parquet(tmp_path / "d" / "a.parquet", [vtriune_math_row()], VTRIUNE_SCHEMA)
    write_parquet(tmp_path / "d" / "b.parquet", [vtriune_detection_row()], VTRIUNE_SCHEMA)
    samples, quarantine = read_vtriune(tmp_path / "d", policy, split="val")
    assert quarantine == [] and len(samples) == 2
    assert {s.split for s in samples} == {"val"}


def test_extra_columns_are_kept(tmp_path, policy):
    schema = VTRIUNE_SCHEMA.append(pa.field("difficulty_level", pa.string()))
    path = write_parquet(tmp_path / "x.parquet", [vtriune_math_row(difficulty_level="hard")], schema)
    (sample,), _ = read_vtriune(path, policy)
    assert sample.meta["vtriune"]["difficulty_level"] == "hard"


def test_det_verifier_normalized_maps_onto_the_box_scales(tmp_path, policy):
    """det_verifier_normalized false: answers on the truth's 0-1000 grid; true: Qwen2.5-VL pixels of
    the resized image, mapped back with the row's image size and the processor bounds it carries."""
    plain = vtriune_detection_row(extra_info={"id": "plain", "image_path": "a.png"})
    plain["reward_model"] = dict(plain["reward_model"], verifier_parm=json.dumps({"det_verifier_normalized": False}))
    resized = vtriune_detection_row(extra_info={"id": "resized", "image_path": "a.png"},
                                    images=[{"bytes": png("red", (1280, 960)), "path": None, "min_pixels": 3136, "max_pixels": 1003520}])
    resized["reward_model"] = dict(resized["reward_model"], verifier_parm=json.dumps({"det_verifier_normalized": True}))
    own = vtriune_detection_row(extra_info={"id": "own", "image_path": "a.png"})
    own["reward_model"] = dict(own["reward_model"], verifier_parm=json.dumps({"det_verifier_normalized": True, "pred_scale": "thousand"}))
    path = write_parquet(tmp_path / "x.parquet", [plain, resized, own])
    samples, quarantine = read_vtriune(path, policy)
    assert quarantine == []
    by_id = {s.id: s.verifier_params for s in samples}
    assert by_id["plain"] == {"det_verifier_normalized": False, "scale": "thousand"}
    assert by_id["resized"] == {"det_verifier_normalized": True, "gt_scale": "thousand", "pred_scale": "resized", "image_size": [1280, 960],
                                "min_pixels": 3136, "max_pixels": 1003520}
    assert by_id["own"]["pred_scale"] == "thousand"  # a row that states its scale keeps it
    # a Qwen2.5-VL answer on the 1148x840 resized image lands on the 0-1000 truth
    det = next(s for s in samples if s.id == "resized")
    truth = "[{'bbox_2d': [100, 100, 500, 500], 'label': 'shiba dog'}]"
    answer = "<answer>[{'bbox_2d': [115, 84, 574, 420], 'label': 'shiba dog'}]</answer>"
    assert verify(det.verifier, answer, truth, {**det.verifier_params, "threshold": 0.95}).passed


def test_null_keys_of_merged_struct_columns_are_dropped(tmp_path, policy):
    """Rows written into one parquet file share one struct type: a math row gets the detection row's
    keys as nulls. Those are no settings of the math row."""
    path = write_parquet(tmp_path / "x.parquet", [vtriune_math_row(), vtriune_detection_row()])  # inferred, merged struct
    (math, det), quarantine = read_vtriune(path, policy)
    assert quarantine == []
    assert math.verifier_params == {}
    assert det.verifier_params["det_reward_ratio"] == pytest.approx(
        {"iou_max_label_first": 1.0, "iou_max_iou_first": 0.0, "iou_completeness": 0.3, "map": 0.0, "map50": 0.0, "map75": 0.0})
