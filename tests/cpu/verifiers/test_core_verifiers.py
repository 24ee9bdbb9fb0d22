import pytest

from engine.verifiers import extract_answer, verify


def test_extraction_takes_the_final_answer_not_the_reasoning():
    assert extract_answer("I think 12... \\boxed{2}") == "2"
    assert extract_answer("<think>\\boxed{9}</think><answer>\\boxed{\\frac{1}{2}}</answer>") == "\\frac{1}{2}"
    assert extract_answer("<answer> red </answer>") == "red"
    assert extract_answer("the answer is 3") is None
    assert extract_answer("\\boxed{unbalanced") is None


@pytest.mark.parametrize("output,ok", [("\\boxed{2}", True), ("\\boxed{12}", False), ("\\boxed{2.0}", True), ("\\boxed{two}", False)])
def test_numeric_never_substring(output, ok):
    assert verify("numeric", output, "2", {"tolerance": 0}).passed is ok


def test_exact_normalizes_case_and_space_only():
    assert verify("exact", "\\boxed{ Red }", "red").passed
    assert not verify("exact", "\\boxed{dark red}", "red").passed
    assert verify("exact", "no box here", "red").reason == "no_answer"


def test_iou_thresholded_not_any_overlap():
    gt = "[10, 10, 50, 50]"
    assert verify("iou", "\\boxed{[10, 10, 50, 50]}", gt, {"threshold": 0.5}).passed
    barely = verify("iou", "\\boxed{[40, 40, 80, 80]}", gt, {"threshold": 0.5})
    assert 0 < barely.score < 0.5 and not barely.passed
    assert verify("iou", "\\boxed{[{'bbox_2d': [12, 10, 50, 52], 'label': 'x'}]}", gt).passed
    assert verify("iou", "\\boxed{[50, 50, 10, 10]}", gt).reason == "not_a_box"


def test_ocr_edit_distance():
    r = verify("ocr", "\\boxed{1234}", "1284", {"max_distance": 0.0})
    assert r.score == pytest.approx(0.75) and not r.passed
    assert verify("ocr", "\\boxed{1234}", "1284", {"max_distance": 0.25}).passed


def test_math_equivalence():
    assert verify("math", "\\boxed{\\frac{1}{2}}", "0.5").passed
    assert not verify("math", "\\boxed{3}", "0.5").passed


def test_unknown_verifier_is_an_error():
    with pytest.raises(KeyError, match="unknown verifier"):
        verify("nope", "x", "y")
