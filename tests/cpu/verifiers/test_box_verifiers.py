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
    ("[0.1, 0.1, 0.5, 0.5]", {"pred_scale": "unit"}),
    ("[100, 100, 500, 500]", {"pred_scale": "thousand"}),  # Qwen2-VL's 0-1000 grid
    ("[20, 20, 100, 100]", {"pred_scale": "pixel", "image_size": [200, 200]}),  # pixels of a 200 px image
])
def test_declared_pixel_unit_and_thousand_scales_agree(answer, params):
    r = verify("iou", B(answer), "[0.1, 0.1, 0.5, 0.5]", {"gt_scale": "unit", **params})
    assert r.passed and r.score == pytest.approx(1.0), r


def test_pixel_boxes_without_image_size_are_a_recorded_error():
    r = verify("iou", B("[10, 10, 50, 50]"), GT, {"pred_scale": "pixel", "gt_scale": "pixel"})
    assert not r.passed and r.reason.startswith("error:ValueError") and "image_size" in r.reason


@pytest.mark.parametrize("name", ["iou", "detection"])
@pytest.mark.parametrize("params", [
    {"image_size": [1280, 960]},  # no scale stated: the truth's frame (0-1000 here) is the answer's too
    {"scale": "thousand", "image_size": [1280, 960]},
    {"scale": "thousand"},
])
def test_the_answer_cannot_pick_its_own_scale(name, params):
    """[0, 0, 1, 1] is a speck in the truth's 0-1000 frame, not the whole image read as 0-1."""
    r = verify(name, B("[0, 0, 1, 1]"), "[0, 0, 1000, 1000]", params)
    assert r.reason == "" and not r.passed and r.score < 0.01, r
    assert verify(name, B("[0, 0, 1000, 1000]"), "[0, 0, 1000, 1000]", params).passed


def test_pixel_truth_fixes_the_frame_for_unit_answers():
    size = {"image_size": [112, 112]}
    for params in (size, {**size, "scale": "pixel"}):
        r = verify("iou", B("[0.1, 0.1, 0.9, 0.9]"), "[11, 11, 101, 101]", params)
        assert r.reason == "" and r.score < 0.01, r
    assert verify("iou", B("[0.1, 0.1, 0.9, 0.9]"), "[11, 11, 101, 101]", {**size, "gt_scale": "pixel", "pred_scale": "unit"}).score > 0.95


# Qwen2.5-VL answers in pixels of the image its processor resized (smart_resize, factor 28): a
# 1280x960 image with max_pixels 1003520 is seen as 1148x840.
QWEN = {"gt_scale": "pixel", "pred_scale": "resized", "image_size": [1280, 960], "min_pixels": 3136, "max_pixels": 1003520}


def test_resized_scale_maps_qwen25_coordinates_back_to_the_original_image():
    truth = "[128, 96, 640, 480]"  # original pixels; on the resized image: [114.8, 84, 574, 420]
    r = verify("iou", B("[115, 84, 574, 420]"), truth, {**QWEN, "threshold": 0.95})
    assert r.passed and r.score > 0.99, r
    as_original = verify("iou", B("[115, 84, 574, 420]"), truth, {**QWEN, "pred_scale": "pixel", "threshold": 0.95})
    assert not as_original.passed and as_original.score < 0.75
    # V-Triune: truth on the 0-1000 grid, the Qwen2.5-VL answer in resized pixels
    vt = verify("detection", B("[{'bbox_2d': [115, 84, 574, 420], 'label': 'dog'}]"), "[{'bbox_2d': [100, 100, 500, 500], 'label': 'dog'}]",
                {**QWEN, "gt_scale": "thousand", "threshold": 0.95})
    assert vt.passed, vt


@pytest.mark.parametrize("missing", ["min_pixels", "max_pixels", "image_size"])
def test_resized_scale_needs_the_processor_bounds(missing):
    params = {k: v for k, v in QWEN.items() if k != missing}
    r = verify("iou", B("[115, 84, 574, 420]"), "[128, 96, 640, 480]", params)
    assert not r.passed and r.reason.startswith("error:ValueError") and missing in r.reason, r


def test_unknown_scale_is_a_recorded_error():
    r = verify("iou", B("[1, 1, 5, 5]"), GT, {"scale": "inches", "image_size": [100, 100]})
    assert not r.passed and r.reason.startswith("error:ValueError") and "inches" in r.reason, r


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
