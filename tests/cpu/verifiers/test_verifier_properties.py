"""Property tests: over random and hostile strings and boxes, verifiers never crash and always return.

"Total" means a verdict or a reason the input earns (no_answer, not_a_number, timeout, ...). A
crash caught by the guard (`error:...`, `worker_died`) is a verifier bug and fails these tests;
`bad_ground_truth` is accepted only where the truth itself is random. The time bound is asserted
through the verifier's own result (reason "timeout"), never a wall clock.
"""
import json
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.verifiers import VERIFIERS, RewardConfig, check_format, compute_reward, verify
from engine.verifiers.base import BAD_GROUND_TRUTH, WORKER_DIED
from engine.verifiers.registry import VerifierEntry

INLINE = sorted(n for n, e in VERIFIERS.items() if not e.isolated)
TRUTHS = {"exact": "red", "yesno": "yes", "choice": "A,C", "numeric": "12", "count": "3", "ocr": "hello", "labels": "cat, dog",
          "iou": "[10, 10, 50, 50]", "detection": "[{'bbox_2d': [10, 10, 50, 50], 'label': 'cat'}]", "math": "\\frac{1}{2}"}
TOKENS = st.sampled_from(["\\boxed{", "}", "{", "<answer>", "</answer>", "<think>", "</think>", "[", "]", ",", "'bbox_2d'", ":",
                          "1e308", "-0", "NaN", "A", "a", "yes", "\\frac{", "/", "%", " ", "\n", "9" * 50, "((", "))"])
hostile = st.lists(st.one_of(TOKENS, st.text(max_size=20)), max_size=60).map("".join)
number = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6))
box_text = st.lists(st.lists(number, min_size=3, max_size=5), max_size=5).map(lambda b: json.dumps(b))
# database=None: the self-test below fails on purpose and must not leave examples in the tree
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
PARAMS = {"image_size": [100, 100]}


def _check(r, truth_may_be_bad=False):
    assert 0.0 <= r.score <= 1.0
    assert r.passed in (True, False)
    assert isinstance(r.reason, str)
    if r.passed:
        assert r.reason == ""
    assert not r.reason.startswith(("error:", WORKER_DIED)), f"the verifier crashed: {r}"
    if not truth_may_be_bad:
        assert not r.reason.startswith(BAD_GROUND_TRUTH), f"a valid truth was refused: {r}"


@SETTINGS
@given(output=hostile, truth=st.text(max_size=30))
def test_inline_verifiers_are_total_on_random_text(output, truth):
    for name in INLINE:
        _check(verify(name, output, truth, PARAMS), truth_may_be_bad=True)
        _check(verify(name, "\\boxed{" + output + "}", TRUTHS[name], PARAMS))


@SETTINGS
@given(pred=box_text, gt=box_text, w=st.integers(1, 2000), h=st.integers(1, 2000))
def test_box_verifiers_are_total_on_random_boxes(pred, gt, w, h):
    for name in ("iou", "detection"):
        _check(verify(name, "\\boxed{" + pred + "}", gt, {"image_size": [w, h]}), truth_may_be_bad=True)
        _check(verify(name, "\\boxed{" + pred + "}", TRUTHS[name], {"image_size": [w, h]}))


@SETTINGS
@given(output=hostile)
def test_formats_and_rewards_are_total(output):
    for fmt in ("think_answer", "vtriune", "boxed"):
        _check(check_format(fmt, output))
    r = compute_reward(output, "3", "count", {}, RewardConfig())
    assert 0.0 <= r.score <= 5.0
    assert not r.reason.startswith(("error:", WORKER_DIED)), r


@settings(max_examples=15, deadline=None, database=None)
@given(output=hostile)
def test_math_verifier_is_total(output):
    _check(verify("math", "\\boxed{" + output + "}", TRUTHS["math"], {"timeout_s": 2}))


def _always_crashes(output, truth, params):
    raise RuntimeError("verifier bug")


def _crashes_on_digits(output, truth, params):
    if any(c.isdigit() for c in output):
        raise ZeroDivisionError("verifier bug on some inputs")
    return verify("exact", output, truth, params)


@pytest.mark.parametrize("crashing", [_always_crashes, _crashes_on_digits])
def test_the_property_tests_reject_a_crashing_verifier(crashing, monkeypatch):
    # The guard turns the crash into an `error:` result; the property test must not accept that as total.
    monkeypatch.setitem(VERIFIERS, "crashing", VerifierEntry(crashing))
    monkeypatch.setitem(TRUTHS, "crashing", "red")
    monkeypatch.setattr(sys.modules[__name__], "INLINE", ["crashing"])
    with pytest.raises(AssertionError, match="the verifier crashed"):
        test_inline_verifiers_are_total_on_random_text()
