"""Property tests: over random and hostile strings and boxes, verifiers never raise and always return.

The time bound is asserted through the verifier's own result (reason "timeout"), never a wall clock.
"""
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.verifiers import VERIFIERS, check_format, compute_reward, RewardConfig, verify

INLINE = sorted(n for n, e in VERIFIERS.items() if not e.isolated)
TRUTHS = {"exact": "red", "yesno": "yes", "choice": "A,C", "numeric": "12", "count": "3", "ocr": "hello", "labels": "cat, dog",
          "iou": "[10, 10, 50, 50]", "detection": "[{'bbox_2d': [10, 10, 50, 50], 'label': 'cat'}]", "math": "\\frac{1}{2}"}
TOKENS = st.sampled_from(["\\boxed{", "}", "{", "<answer>", "</answer>", "<think>", "</think>", "[", "]", ",", "'bbox_2d'", ":",
                          "1e308", "-0", "NaN", "A", "a", "yes", "\\frac{", "/", "%", " ", "\n", "9" * 50, "((", "))"])
hostile = st.lists(st.one_of(TOKENS, st.text(max_size=20)), max_size=60).map("".join)
number = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6))
box_text = st.lists(st.lists(number, min_size=3, max_size=5), max_size=5).map(lambda b: json.dumps(b))
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(r):
    assert 0.0 <= r.score <= 1.0
    assert r.passed in (True, False)
    assert isinstance(r.reason, str)
    if r.passed:
        assert r.reason == ""


@SETTINGS
@given(output=hostile, truth=st.text(max_size=30))
def test_inline_verifiers_are_total_on_random_text(output, truth):
    for name in INLINE:
        _check(verify(name, output, truth, {"image_size": [100, 100]}))
        _check(verify(name, "\\boxed{" + output + "}", TRUTHS[name], {"image_size": [100, 100]}))


@SETTINGS
@given(pred=box_text, gt=box_text, w=st.integers(1, 2000), h=st.integers(1, 2000))
def test_box_verifiers_are_total_on_random_boxes(pred, gt, w, h):
    for name in ("iou", "detection"):
        r = verify(name, "\\boxed{" + pred + "}", gt, {"image_size": [w, h]})
        _check(r)


@SETTINGS
@given(output=hostile)
def test_formats_and_rewards_are_total(output):
    for fmt in ("think_answer", "vtriune", "boxed"):
        _check(check_format(fmt, output))
    r = compute_reward(output, "3", "count", {}, RewardConfig())
    assert 0.0 <= r.score <= 5.0


@settings(max_examples=15, deadline=None)
@given(output=hostile)
def test_math_verifier_is_total(output):
    _check(verify("math", "\\boxed{" + output + "}", TRUTHS["math"], {"timeout_s": 2}))
