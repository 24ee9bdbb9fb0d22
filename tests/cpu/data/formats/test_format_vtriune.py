"""V-Triune (Orsta-Data-47k) parquet -> Sample: fields mapped faithfully, the rest kept in meta."""
import json

import pyarrow as pa

from engine.data.formats import read_records
from engine.data.formats.vtriune import read_vtriune

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
    assert set(math.verifier_params) == {"det_verifier_normalized", "det_reward_ratio"}

    assert det.id == "v3det-000123"
    assert det.answer == DET_BOXES
    assert (det.task, det.verifier, det.domain, det.source) == ("cv_detection", "detection", "v3det", "v3det_train")
    assert det.verifier_params["det_verifier_normalized"] is True
    assert abs(det.verifier_params["det_reward_ratio"]["iou_completeness"] - 0.3) < 1e-6
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
