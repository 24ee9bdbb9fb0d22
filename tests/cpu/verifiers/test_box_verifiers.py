"""Box verifiers: Curr-ReFT single-box IoU and V-Triune detection (scales, greedy matching, size penalty)."""
import pytest

from engine.verifiers import VTRIUNE_IOU_SCHEDULE, resolve_threshold, verify

B = "\\boxed{{{}}}".format
GT = "[10, 10, 50, 50]"


@pytest.mark.parametrize("answer,params,passed,reason", [
    ("[10, 10, 50, 50]", {}, True, ""),
    ("[{'bbox_2d': [12, 10, 50, 52], 'label': 'x'}]", {}, True, ""),
    ('{"bbox_2d": [10, 10, 50, 50]}', {}, True, ""),
    ("[40, 40, 80, 80]", {}, False, ""),  # overlaps, IoU < 0.5: a float IoU is not a boolean
    ("[50, 50, 10, 10]", {}, False, "swapped_corners"),
    ("[50, 50, 10, 10]", {"swapped": "fix"}, True, ""),
    ("[10, 10, 10, 50]", {}, False, "degenerate_box"),
    ("[10, 10, 50]", {}, False, "not_a_box"),
    ("[10, 10, 50, true]", {}, False, "not_a_box"),
    ("[[10, 10, 50, 50], [0, 0, 5, 5]]", {}, False, "not_one_box"),
    ("the dog", {}, False, "not_a_box"),
    ("[NaN, 1, 2, 3]", {}, False, "non_finite_box"),
])
def test_single_box_iou(answer, params, passed, reason):
    r = verify("iou", B(answer), GT, {"image_size": [100, 100], **params})
    assert (r.passed, r.reason) == (passed, reason), r


def test_iou_score_is_the_overlap_and_threshold_is_configurable():
    r = verify("iou", B("[40, 40, 80, 80]"), GT, {"image_size": [100, 100]})
    assert r.score == pytest.approx(100 / 3100)
    assert verify("iou", B("[20, 10, 50, 50]"), GT, {"image_size": [100, 100], "threshold": 0.7}).passed  # IoU 0.75
    assert not verify("iou", B("[20, 10, 50, 50]"), GT, {"image_size": [100, 100], "threshold": 0.8}).passed


@pytest.mark.parametrize("answer,params", [
    ("[0.1, 0.1, 0.5, 0.5]", {}),  # 0-1 prediction vs pixel truth
    ("[100, 100, 500, 500]", {"pred_scale": "thousand"}),  # Qwen2-VL's 0-1000 grid
    ("[20, 20, 100, 100]", {"image_size": [200, 200]}),  # pixels of a 200 px image
])
def test_pixel_unit_and_thousand_scales_agree(answer, params):
    r = verify("iou", B(answer), "[0.1, 0.1, 0.5, 0.5]", {"image_size": [100, 100], **params})
    assert r.passed and r.score == pytest.approx(1.0), r


def test_pixel_boxes_without_image_size_are_a_recorded_error():
    r = verify("iou", B("[10, 10, 50, 50]"), GT, {"pred_scale": "pixel", "gt_scale": "pixel"})
    assert not r.passed and r.reason.startswith("error:ValueError") and "image_size" in r.reason


DET_GT = "[{'bbox_2d': [0, 0, 100, 100], 'label': 'cat'}, {'bbox_2d': [200, 200, 300, 300], 'label': 'dog'}]"
P = {"image_size": [400, 400], "threshold": 0.5}


def test_detection_greedy_matching_is_order_free():
    swapped = "[{'bbox_2d': [200, 200, 300, 300], 'label': 'dog'}, {'bbox_2d': [0, 0, 100, 100], 'label': 'cat'}]"
    r = verify("detection", f"<answer>{swapped}</answer>", DET_GT, P)
    assert r.passed and r.score == pytest.approx(1.0) and r.details["matched"] == 2


def test_detection_size_penalty_and_labels():
    one = "[{'bbox_2d': [0, 0, 100, 100], 'label': 'cat'}]"
    r = verify("detection", B(one), DET_GT, P)
    assert not r.passed and r.score == pytest.approx(0.6 * 1 / 2)
    extra = DET_GT[:-1] + ", {'bbox_2d': [300, 0, 380, 50], 'label': 'cat'}]"
    r = verify("detection", B(extra), DET_GT, P)
    assert not r.passed and r.score == pytest.approx(0.6)
    wrong_labels = DET_GT.replace("cat", "x").replace("dog", "y")
    assert verify("detection", B(wrong_labels), DET_GT, P).score == 0.0
    bare = "[[0, 0, 100, 100], [200, 200, 300, 300]]"
    assert verify("detection", B(bare), "[[200, 200, 300, 300], [0, 0, 100, 100]]", P).passed


def test_detection_dynamic_threshold_schedule():
    near = "[{'bbox_2d': [0, 0, 100, 91], 'label': 'cat'}, {'bbox_2d': [200, 200, 300, 300], 'label': 'dog'}]"  # IoU 0.91
    params = {**P, "threshold": VTRIUNE_IOU_SCHEDULE}
    assert verify("detection", B(near), DET_GT, {**params, "progress": 0.0}).passed  # bar 0.85
    late = verify("detection", B(near), DET_GT, {**params, "progress": 0.5})  # bar 0.99
    assert not late.passed and late.score == pytest.approx(0.5)
    assert verify("detection", B(near), DET_GT, {**params, "progress": 0.5, "credit": "iou"}).score == pytest.approx((0.91 + 1) / 2)
    assert [resolve_threshold(VTRIUNE_IOU_SCHEDULE, p) for p in (0, 0.1, 0.2, 0.25, 1)] == [0.85, 0.95, 0.95, 0.99, 0.99]


def test_empty_truth_and_empty_prediction():
    assert verify("detection", B("[]"), "[]", P).passed
    assert not verify("detection", B(DET_GT), "[]", P).passed
    assert verify("detection", B("[]"), DET_GT, P).score == 0.0
