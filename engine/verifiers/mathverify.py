"""Mathematical equivalence through math-verify, on the extracted answer only.

This verifier runs in an isolated worker process (see guard.py): sympy can hang on hostile
input, sometimes inside C code that no signal interrupts, and math-verify's own timeout uses
SIGALRM, which only works on a main thread (verl's reward loop calls compute_score from an
executor thread). In the worker, math-verify's timeouts are live and raise, so a timeout is
recorded as one, not returned as a silent False.

Both sides go to math-verify's parser the way the library itself is used: text that carries its
own math delimiters, and plain numbers ("1,22" is 1.22, "1 000" is 1000), are parsed as written;
only bare LaTeX such as `\\frac{1}{2}` or `x^2+1` is put in `$...$` so the parser sees it as math.
"""
from __future__ import annotations

import numbers
import re
from itertools import product
from typing import Any

from engine.verifiers.base import ANSWER_TOO_LONG, MAX_ANSWER_CHARS, TIMEOUT, GroundTruthError, VerifyResult
from engine.verifiers.extract import answer_tag, extract_or_fail, last_boxed

DEFAULT_PRECISION = 6  # decimal places floats are rounded to before comparing (math-verify's float_rounding)

_DELIMITERS = ("$", "\\(", "\\[", "\\boxed", "\\fbox")
# A plain number in the forms math-verify's number reader takes whole: thousands groups
# ("1,234.5", "1 000"), a decimal point or comma ("1.22", "1,22"), ".5", an optional percent.
_PLAIN_NUMBER = re.compile(
    r"-?(?:[1-9]\d{0,2}(?:[ ,]\d{3})+(?:\.\d+)?|\d+(?:[.,]\d+)?|\.\d+)\.?"
    r"(?:\s*(?:%|percent(?:age)?|pct))?",
    re.IGNORECASE,
)


def _configs():
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    return (LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig())


def parser_input(text: str) -> str:
    """What the parser is given for a truth or an <answer> text without a box: as written when it
    carries its own math delimiters (prose with inline $...$ keeps its math and text regions) or is
    a plain number (math-verify reads plain "1,22" as 1.22 and "1 000" as 1000), else in $...$ (so
    bare LaTeX like "x^2 + 1" is read whole, not cut down to its last number)."""
    text = text.strip()
    if any(d in text for d in _DELIMITERS) or _PLAIN_NUMBER.fullmatch(text):
        return text
    return "$" + text + "$"


def boxed_input(text: str, max_chars: int = MAX_ANSWER_CHARS) -> tuple[str, str] | None:
    """(the boxed answer, what the parser is given), None without a complete \\boxed{}.

    Several boxes closing the text are combined as math-verify combines them: "\\boxed{1},
    \\boxed{2}" is the answer {1, 2}, not 2; boxes separated by reasoning are not (math-verify's
    own rule, reused, so both agree on what the answer is). Box content is LaTeX: "1,200" is
    1200, "-2,1" the set {-2, 1}.
    """
    from latex2sympy2_extended.math_normalization import extract_boxed_content

    last = last_boxed(text)
    if last is None:
        return None
    end = text.rfind("\\boxed{") + len("\\boxed{") + len(last) + 1
    # math-verify's scan is quadratic in the number of boxes (100 000 boxes: 50 s); a run of boxes
    # longer than a few answer caps is no answer anyway, so it only sees the text just before.
    tail = text[max(0, end - 4 * max_chars) : end]
    combined = extract_boxed_content(tail, mode="last").strip()
    return combined, "$" + combined + "$"


def judged_answer(output: str, params: dict[str, Any]) -> tuple[str, str] | VerifyResult:
    """(the answer to judge, what the parser is given), or the failure result."""
    answer = extract_or_fail(output, params)
    if isinstance(answer, VerifyResult):
        return answer
    tagged = answer_tag(output)
    max_chars = int(params.get("max_answer_chars", MAX_ANSWER_CHARS))
    boxed = boxed_input(output if tagged is None else tagged, max_chars)
    if boxed is None:
        return answer, parser_input(answer)  # an <answer> without a box is judged whole
    if len(boxed[0]) > max_chars:
        return VerifyResult.unparsed(ANSWER_TOO_LONG, boxed[0][:64])
    return boxed


def truth_input(truth: str) -> str:
    """What the parser is given for the truth: by the same rules as the answer."""
    boxed = boxed_input(truth)
    return parser_input(truth) if boxed is None else boxed[1]


def comparison_options(params: dict[str, Any]) -> dict[str, Any]:
    """math-verify's comparison options from the verifier params (the dataset's conventions).

    precision: decimal places floats are rounded to (6: 0.333333 equals 1/3); strict: variable
    names matter and a set never equals a tuple; allow_set_relation_comp: "1 < x < 2" may equal
    the interval (1, 2). A wrong type is a configuration error, never a silent default.
    """
    import numpy as np

    precision = params.get("precision", DEFAULT_PRECISION)
    if isinstance(precision, (bool, np.bool_)) or not isinstance(precision, numbers.Real) or not 0 <= precision <= 15 or precision != int(precision):
        raise ValueError(f"math param precision must be an integer in [0, 15], got {precision!r}")
    options: dict[str, Any] = {"float_rounding": int(precision)}
    for key, default in (("strict", True), ("allow_set_relation_comp", False)):
        value = params.get(key, default)
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"math param {key} must be true or false, got {value!r}")
        options[key] = bool(value)
    return options


def _usable_gold(parsed: list) -> list:
    # A truth that evaluates to zoo or nan ("12:00" read as 12/0) is no number: comparing it would
    # let every answer that divides by zero pass. Its text form still compares as text.
    from sympy import Basic, S

    return [g for g in parsed if not (isinstance(g, Basic) and g.has(S.ComplexInfinity, S.NaN))]


def _equivalent(gold: list, pred: list, options: dict[str, Any], seconds: int) -> bool:
    """True when any gold reading equals any answer reading (math-verify's rule). A pair sympy
    cannot compare counts as unequal, as in the library; a timeout still raises."""
    from math_verify import verify

    for g, p in product(gold, pred):
        try:
            if verify(g, p, timeout_seconds=seconds, raise_on_error=True, **options):
                return True
        except Exception:
            continue
    return False


def verify_math(output: str, truth: str, params: dict[str, Any]) -> VerifyResult:
    from math_verify import parse
    from math_verify.errors import TimeoutException

    options = comparison_options(params)
    judged = judged_answer(output, params)
    if isinstance(judged, VerifyResult):
        return judged
    answer, pred_text = judged
    seconds = max(1, int(params.get("timeout_s", 5)))
    try:
        gold = _usable_gold(parse(truth_input(truth), _configs(), parsing_timeout=seconds, raise_on_error=True))
        if not gold:
            raise GroundTruthError(f"math truth {truth!r}")
        pred = parse(pred_text, _configs(), parsing_timeout=seconds, raise_on_error=True)
        if not pred:
            return VerifyResult.unparsed("unparseable_math", answer)
        ok = _equivalent(gold, pred, options, seconds)
    except TimeoutException:
        return VerifyResult.unparsed(TIMEOUT, answer)
    return VerifyResult.judged(ok, answer)
