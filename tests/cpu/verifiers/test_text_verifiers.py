"""Table-driven: known equivalences and known traps for the short-answer verifiers."""
import pytest

from engine.verifiers import extract_answer, verify

B = "\\boxed{{{}}}".format


def test_extraction_takes_the_final_answer_not_the_reasoning():
    assert extract_answer("I think 12... \\boxed{2}") == "2"
    assert extract_answer("<think>\\boxed{9}</think><answer>\\boxed{\\frac{1}{2}}</answer>") == "\\frac{1}{2}"
    assert extract_answer("<answer> red </answer>") == "red"
    assert extract_answer("the answer is 3") is None
    assert extract_answer("\\boxed{unbalanced") is None
    assert extract_answer("\\boxed{\\frac{a}{\\sqrt{b}}}") == "\\frac{a}{\\sqrt{b}}"  # nested braces
    assert extract_answer("<answer>1</answer> then <answer>2</answer>") == "2"


@pytest.mark.parametrize("name,output,truth,params,passed,reason", [
    # numeric: whole answers, never substrings
    ("numeric", B("2"), "2", {}, True, ""),
    ("numeric", B("12"), "2", {}, False, ""),
    ("numeric", B("2"), "12", {}, False, ""),
    ("numeric", B("2.0"), "2", {}, True, ""),
    ("numeric", B("1,234"), "1234", {}, True, ""),
    ("numeric", B("1,23"), "123", {}, False, "not_a_number"),
    ("numeric", B("\\frac{3}{4}"), "0.75", {}, True, ""),
    ("numeric", B("3/4"), "0.75", {}, True, ""),
    ("numeric", B("50\\%"), "50", {}, True, ""),
    ("numeric", B("two"), "2", {}, False, "not_a_number"),
    ("numeric", B("2 apples"), "2", {}, False, "not_a_number"),
    ("numeric", B("3.14"), "3.14159", {"tolerance": 0.01}, True, ""),
    ("numeric", B("3.2"), "3.14159", {"tolerance": 0.01}, False, ""),
    ("numeric", B("101"), "100", {"tolerance": 0.02, "relative": True}, True, ""),
    ("numeric", B("1e999"), "1", {}, False, "not_a_number"),
    # relative means relative, also below 1: 5 % of 0.001 is 0.00005
    ("numeric", B("0.04"), "0.001", {"tolerance": 0.05, "relative": True}, False, ""),
    ("numeric", B("0.00104"), "0.001", {"tolerance": 0.05, "relative": True}, True, ""),
    ("numeric", B("0.0011"), "0.001", {"tolerance": 0.05, "relative": True}, False, ""),
    ("numeric", B("0.04"), "0.001", {"tolerance": 0.05, "relative": True, "abs_floor": 0.05}, True, ""),  # an explicit floor
    ("numeric", B("0.3"), "0", {"tolerance": 0.05, "relative": True}, False, ""),
    ("numeric", B("0"), "0", {"tolerance": 0.05, "relative": True}, True, ""),
    ("numeric", B("0.4"), "0.3", {"tolerance": 0.1}, True, ""),  # 0.4 - 0.3 is 0.10000000000000003 in floats
    # a trailing full stop ends the sentence, not the number
    ("numeric", B("5."), "5", {}, True, ""),
    ("numeric", "<answer>-2.5.</answer>", "-2.5", {}, True, ""),
    ("numeric", B("5.."), "5", {}, False, "not_a_number"),
    ("numeric", B("."), "5", {}, False, "not_a_number"),
    # an exponent needs a mantissa: a policy's "e2" is a wrong answer, not a verifier crash (seen in a demo eval)
    ("numeric", B("e2"), "100", {}, False, "not_a_number"),
    ("numeric", B("-e3"), "-1000", {}, False, "not_a_number"),
    ("numeric", B("1e2"), "100", {}, True, ""),
    ("numeric", B(".5e1"), "5", {}, True, ""),
    ("count", B("e2"), "2", {}, False, "not_a_count"),
    ("count", B("5."), "5", {}, True, ""),
    ("numeric", "no box", "2", {}, False, "no_answer"),
    ("numeric", B(""), "2", {}, False, "no_answer"),
    ("numeric", B("2"), "n/a", {}, False, "bad_ground_truth"),
    # counting
    ("count", B("3"), "3", {}, True, ""),
    ("count", B("three"), "3", {}, True, ""),
    ("count", B("3.0"), "3", {}, True, ""),
    ("count", B("3.5"), "3", {}, False, "not_a_count"),
    ("count", B("-3"), "3", {}, False, "not_a_count"),
    ("count", B("13"), "3", {}, False, ""),
    # exact / normalized text
    ("exact", B(" Red "), "red", {}, True, ""),
    ("exact", B("Red."), "red", {}, True, ""),
    ("exact", B("dark red"), "red", {}, False, ""),
    ("exact", B("red"), "dark red", {}, False, ""),
    ("exact", B("Red"), "red", {"normalize": False}, False, ""),
    ("exact", B("\\text{red}"), "red", {}, True, ""),
    # yes / no
    ("yesno", B("Yes"), "yes", {}, True, ""),
    ("yesno", "<answer>no.</answer>", "no", {}, True, ""),
    ("yesno", B("true"), "yes", {}, True, ""),
    ("yesno", B("yes and no"), "yes", {}, False, "not_yes_no"),
    ("yesno", B("yesterday"), "yes", {}, False, "not_yes_no"),
    ("yesno", B("no"), "yes", {}, False, ""),
    # multiple choice: set semantics, not fooled by the article "a"
    ("choice", B("A"), "A", {}, True, ""),
    ("choice", B("(b)"), "B", {}, True, ""),
    ("choice", B("C, A"), "A,C", {}, True, ""),
    ("choice", B("A and C"), "AC", {}, True, ""),
    ("choice", B("A"), "A,C", {}, False, ""),
    ("choice", B("A, B, C"), "A,C", {}, False, ""),
    ("choice", B("B. the red circle"), "B", {}, True, ""),
    ("choice", B("a cat"), "A", {}, False, "not_a_choice"),
    ("choice", B("It is a square"), "A", {}, False, "not_a_choice"),
    ("choice", B("a"), "A", {}, True, ""),
    ("choice", B("red circle"), "B", {"options": ["blue square", "red circle"]}, True, ""),
    ("choice", B("E"), "A", {"options": ["w", "x", "y", "z"]}, False, "choice_out_of_range"),
    # letters only from a choice pattern: upper-case prose is not a letter set
    ("choice", B("I AM"), "A,I,M", {}, False, "not_a_choice"),
    ("choice", B("YES"), "E,S,Y", {}, False, "not_a_choice"),
    ("choice", B("AC BD"), "A,B,C,D", {}, False, "not_a_choice"),
    ("choice", B("AC"), "A,C", {}, True, ""),
    ("choice", B("A C"), "A,C", {}, True, ""),
    ("choice", B("(A), (C)"), "A,C", {}, True, ""),
    # OCR: normalized edit distance
    ("ocr", B("HELLO"), "hello", {}, True, ""),
    ("ocr", B("1234"), "1284", {"max_distance": 0.0}, False, ""),
    ("ocr", B("1234"), "1284", {"max_distance": 0.25}, True, ""),
    ("ocr", B("Hello"), "hello", {"case_sensitive": True}, False, ""),
    # classification label sets (Jaccard)
    ("labels", B("dog, cat"), "cat, dog", {}, True, ""),
    ("labels", B("cat"), "cat, dog", {}, False, ""),
    ("labels", B("cat"), "cat, dog", {"threshold": 0.5}, True, ""),
    ("labels", B('["Cat", "dog"]'), "cat; dog", {}, True, ""),
])
def test_verifier_table(name, output, truth, params, passed, reason):
    r = verify(name, output, truth, params)
    assert (r.passed, r.reason.split(":")[0]) == (passed, reason), r
    assert 0.0 <= r.score <= 1.0


def test_continuous_scores():
    assert verify("ocr", B("1234"), "1284").score == pytest.approx(0.75)
    assert verify("labels", B("cat, bird"), "cat, dog").score == pytest.approx(1 / 3)


def test_answer_length_is_capped():
    r = verify("exact", B("x" * 5000), "x")
    assert (r.passed, r.reason) == (False, "answer_too_long")
    assert verify("exact", B("x" * 5000), "x" * 5000, {"max_answer_chars": 10000}).passed


def test_verifier_errors_are_recorded_not_raised():
    r = verify("numeric", B("2"), None)  # type: ignore[arg-type]
    assert not r.passed and r.reason.startswith("error:TypeError")


def test_unknown_verifier_is_a_configuration_error():
    with pytest.raises(KeyError, match="unknown verifier"):
        verify("nope", "x", "y")


@pytest.mark.parametrize("answer,ok", [("I AM", False), ("YES", False), ("It is B", False), ("B", True), ("A, C", True), ("AC", True)])
def test_choice_format_check_wants_a_choice_pattern(answer, ok):
    from engine.verifiers import check_format

    r = check_format("think_answer", f"<think>x</think><answer>{answer}</answer>", {"answer_kind": "choice"})
    assert r.passed == ok, r
