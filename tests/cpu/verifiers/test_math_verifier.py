"""math-verify equivalence on the extracted answer, isolated and time-bounded."""
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from engine.verifiers import VERIFIERS, register_verifier, verify, verify_many

B = "\\boxed{{{}}}".format
REPO = Path(__file__).resolve().parents[3]


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


def _judge(cases, params=None):
    """(passed, reason) per (output, truth) case, judged in parallel workers."""
    return [(r.passed, r.reason) for r in verify_many([("math", out, truth, params) for out, truth in cases])]


# Several \boxed{} closing an answer are one answer (math-verify's own rule), never cut to the last box.
SEVERAL_BOXES = [
    ("The roots are \\boxed{2} and \\boxed{3}.", "2, 3", True),
    ("x = \\boxed{-1} or x = \\boxed{5}", "-1, 5", True),
    ("<answer>\\boxed{(1, 2)} \\text{ and } \\boxed{(3, 4)}</answer>", "(1, 2), (3, 4)", True),
    # hedging over boxes is not a correct answer (cutting to the last box rewarded it)
    ("\\boxed{3} or \\boxed{5}", "5", False),
    ("\\boxed{3}, \\boxed{5}", "3", False),
    # a box in the reasoning, far from the final one, is not part of the answer
    ("My first guess was \\boxed{3}. Checking the discriminant once more shows that guess is off, "
     "so the answer is \\boxed{5}", "5", True),
]


def test_several_boxes_are_combined_into_one_answer():
    expected = [(passed, "") for _, _, passed in SEVERAL_BOXES]
    assert _judge([(out, truth) for out, truth, _ in SEVERAL_BOXES]) == expected
    assert verify("math", "The roots are \\boxed{2} and \\boxed{3}.", "2, 3").extracted == "2,3"


def test_a_plain_number_truth_is_read_as_a_number():
    # A truth written as plain text is a number in the forms math-verify reads plain numbers:
    # decimal comma, space thousands. Wrapping it in $...$ made "1,22" the set {1, 22}.
    cases = [(B("1.22"), "1,22"), (B("22"), "1,22"), (B("1000"), "1 000"), ("<answer>1,22</answer>", "1.22"),
             (B("1200"), "1,200"), (B("-2,1"), "-2, 1")]
    assert _judge(cases) == [(True, ""), (False, ""), (True, ""), (True, ""), (True, ""), (True, "")]


def test_a_truth_that_divides_by_zero_judges_answers_instead_of_erroring():
    # "12:00" reads as 12/0 (zoo): an error on every answer before, and zoo == zoo would pass any X:00.
    cases = [(B("12:00"), "12:00"), (B("13:00"), "12:00"), (B("12"), "12:00"), (B("1/0"), "12:00")]
    assert _judge(cases) == [(True, ""), (False, ""), (False, ""), (False, "")]


def test_prose_answer_keeps_its_own_math_regions():
    # Wrapping "The side is $\sqrt{2}$ cm." in another $...$ turned its text into math and its math into text.
    cases = [("<answer>The side length is $\\sqrt{2}$ cm.</answer>", "\\sqrt{2}"),
             ("<answer>The side length is $\\sqrt{3}$ cm.</answer>", "\\sqrt{2}"),
             ("<answer>Therefore $x \\ge 4$ holds.</answer>", "x \\ge 4"),
             ("<answer>The inverse is $\\begin{pmatrix}2 & 0 \\\\ 0 & 3\\end{pmatrix}$ here.</answer>",
              "\\begin{pmatrix}2 & 0 \\\\ 0 & 3\\end{pmatrix}"),
             ("<answer>x^2 + 1</answer>", "1")]  # bare LaTeX is read whole, not as its last number
    assert _judge(cases) == [(True, ""), (False, ""), (True, ""), (True, ""), (False, "")]


@pytest.mark.parametrize("output,truth,params", [
    (B("0.33"), "\\frac{1}{3}", {"precision": 2}),
    (B("f(y)"), "f(x)", {"strict": False}),
    (B("0 \\le x \\le 3"), "x \\in [0, 3]", {"allow_set_relation_comp": True}),
])
def test_comparison_options_are_verifier_params(output, truth, params):
    # the stricter default fails, the dataset's explicit option passes
    assert _judge([(output, truth)]) == [(False, "")]
    assert _judge([(output, truth)], params) == [(True, "")]


@pytest.mark.parametrize("params", [{"precision": "high"}, {"precision": 2.5}, {"strict": "no"}, {"allow_set_relation_comp": 1}])
def test_a_malformed_option_is_a_configuration_error(params):
    r = verify("math", B("1"), "1", params)
    assert r.infrastructure_failure and r.reason.startswith("error:ValueError: math param"), r


def test_a_script_without_main_guard_gets_a_verdict(tmp_path):
    # Spawned workers used to re-run the caller's script: without an `if __name__ == "__main__"`
    # guard the worker's own verify() failed at bootstrap and every math call ended as worker_died.
    script = tmp_path / "score.py"
    script.write_text("from engine.verifiers import verify\n"
                      "r = verify('math', '\\\\boxed{\\\\frac{1}{2}}', '0.5')\n"
                      "print('VERDICT', r.passed, repr(r.reason))\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines() == ["VERDICT True ''"], (proc.stdout, proc.stderr[-2000:])


def test_an_isolated_verifier_defined_in_the_running_script_is_refused():
    # Workers never import the caller's script, so such a verifier could not be unpickled there.
    def from_script(output, truth, params):
        return verify("exact", output, truth, params)

    from_script.__module__ = "__main__"
    with pytest.raises(ValueError, match="importable module"):
        register_verifier("from_script", from_script, isolated=True)
    assert "from_script" not in VERIFIERS
