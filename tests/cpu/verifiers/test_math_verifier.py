"""math-verify equivalence on the extracted answer, isolated and time-bounded."""
import threading

import pytest

from engine.verifiers import verify, verify_many

B = "\\boxed{{{}}}".format


@pytest.mark.parametrize("answer,truth,passed", [
    ("\\frac{1}{2}", "0.5", True),
    ("0.5", "\\frac{1}{2}", True),
    ("(x+1)^2", "x^2+2x+1", True),
    ("3", "0.5", False),
    ("12", "2", False),
    ("2", "12", False),
    ("\\sqrt{2}", "2^{1/2}", True),
])
def test_math_equivalence(answer, truth, passed):
    r = verify("math", B(answer), truth)
    assert (r.passed, r.reason) == (passed, ""), r


def test_math_judges_the_answer_not_the_reasoning():
    r = verify("math", "<think>maybe 0.5? no</think><answer>\\boxed{3}</answer>", "0.5")
    assert not r.passed and r.extracted == "3"
    assert verify("math", "the answer is 0.5", "0.5").reason == "no_answer"


def test_math_works_off_the_main_thread():
    # verl's reward loop calls compute_score from an executor thread; math-verify's SIGALRM
    # timeout cannot run there, so the verifier runs in a worker process instead.
    out = []
    t = threading.Thread(target=lambda: out.append(verify("math", B("\\frac{2}{4}"), "0.5")))
    t.start()
    t.join()
    assert out[0].passed


def test_hostile_math_returns_a_timeout_result():
    r = verify("math", B("10^{10^{10^{10}}}"), "5", {"timeout_s": 1})
    assert not r.passed and r.reason == "timeout"


def test_verify_many_matches_verify():
    calls = [("math", B("\\frac{1}{2}"), "0.5", None), ("numeric", B("12"), "2", None), ("math", B("7"), "8", None)]
    assert [r.passed for r in verify_many(calls)] == [True, False, False]
