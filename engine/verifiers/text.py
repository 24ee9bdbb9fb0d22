"""Verifiers for short textual answers: exact text, yes/no, choice letters, numbers, counts, OCR, label sets.

All compare the whole extracted answer, never a substring ("2" never matches "12").
"""
from __future__ import annotations

import json
import math
import re
from fractions import Fraction
from typing import Any, Callable

from rapidfuzz.distance import Levenshtein

from engine.verifiers.base import GroundTruthError, VerifyResult
from engine.verifiers.extract import extract_or_fail, normalize_text, strip_latex


def verify_exact(output: str, truth: str, params: dict[str, Any]) -> VerifyResult:
    """Whole-answer text match; `normalize` (default on) folds case, whitespace and final punctuation."""
    answer = extract_or_fail(output, params)
    if isinstance(answer, VerifyResult):
        return answer
    ok = normalize_text(answer) == normalize_text(truth) if params.get("normalize", True) else answer == truth
    return VerifyResult.judged(ok, answer)


def _parse_both(output: str, truth: str, params: dict[str, Any], parse: Callable[[str], Any], what: str, reason: str,
                parse_answer: Callable[[str], Any] | None = None) -> VerifyResult | tuple[str, Any, Any]:
    """(answer, parsed truth, parsed answer), or the failure result. Shared by the parse-then-compare verifiers."""
    answer = extract_or_fail(output, params)
    if isinstance(answer, VerifyResult):
        return answer
    want = parse(truth)
    if want is None:
        raise GroundTruthError(f"{what} truth {truth!r}")
    got = (parse_answer or parse)(answer)
    if got is None:
        return VerifyResult.unparsed(reason, answer)
    return answer, want, got


# ---- yes / no -------------------------------------------------------------------------------
_YES = {"yes", "y", "true", "correct"}
_NO = {"no", "n", "false", "incorrect"}


def parse_yes_no(text: str) -> str | None:
    word = normalize_text(text).strip(" .,!?;:()[]\"'")
    if word in _YES:
        return "yes"
    if word in _NO:
        return "no"
    return None


def verify_yes_no(output: str, truth: str, params: dict[str, Any]) -> VerifyResult:
    """The answer must be exactly yes or no (true/false accepted); "yes and no" is not an answer."""
    parsed = _parse_both(output, truth, params, parse_yes_no, "yes/no", "not_yes_no")
    if isinstance(parsed, VerifyResult):
        return parsed
    answer, want, got = parsed
    return VerifyResult.judged(got == want, answer)


# ---- multiple choice ------------------------------------------------------------------------
_SEPARATORS = re.compile(r" ?[,;/&+] ?| and | ", re.IGNORECASE)  # applied after whitespace is collapsed
_LETTER_WITH_TEXT = re.compile(r"^\(?([A-Za-z])(?:[.):]|\s*\))\s+\S")


def _single_letter(token: str) -> str | None:
    """"B", "(b)", "C." -> the letter; anything longer -> None."""
    token = token.strip("()[]{}.:")
    return token.upper() if len(token) == 1 and token.isascii() and token.isalpha() else None


def _letter_run(text: str) -> list[str] | None:
    """"AC", "ABD": distinct capitals in alphabetical order, the way a multi-select answer is
    written; "YES" or "CAB" are words, not a letter set."""
    token = text.strip("()[]{}.:")
    if len(token) < 2 or not (token.isascii() and token.isalpha() and token.isupper()):
        return None
    return list(token) if all(a < b for a, b in zip(token, token[1:])) else None


def parse_choice(text: str, options: list[str] | None = None) -> frozenset[str] | None:
    """Letters picked by an answer, as a set; None for anything that is not a choice pattern.

    Patterns: single letters joined by separators ("A", "(b)", "C, A", "A and C"), one run of
    letters ("AC"), or a letter with its option text ("B. the red one"). Letters are never pulled
    out of words: "I AM" and "a cat" are prose. With `options` (their texts, in letter order),
    an answer equal to an option's text picks that option.
    """
    text = re.sub(r"\s+", " ", strip_latex(text)).strip()
    tokens = [t for t in _SEPARATORS.split(text) if t]
    letters = [_single_letter(t) for t in tokens]
    if tokens and all(letters):
        return frozenset(letters)  # type: ignore[arg-type]
    run = _letter_run(text)
    if run:
        return frozenset(run)
    m = _LETTER_WITH_TEXT.match(text)
    if m:
        return frozenset({m.group(1).upper()})
    if options:
        norm = normalize_text(text)
        hits = [chr(ord("A") + i) for i, opt in enumerate(options) if normalize_text(str(opt)) == norm]
        if len(hits) == 1:
            return frozenset(hits)
    return None


def verify_choice(output: str, truth: str, params: dict[str, Any]) -> VerifyResult:
    """Exact set match of option letters, order-insensitive (multi-select allowed)."""
    options = params.get("options")
    parsed = _parse_both(output, truth, params, parse_choice, "choice", "not_a_choice", lambda a: parse_choice(a, options))
    if isinstance(parsed, VerifyResult):
        return parsed
    answer, want, got = parsed
    if options and any(ord(c) - ord("A") >= len(options) for c in got):
        return VerifyResult.unparsed("choice_out_of_range", answer)
    return VerifyResult.judged(got == want, answer, picked="".join(sorted(got)))


# ---- numbers --------------------------------------------------------------------------------
# a mantissa (digits, grouped digits or .digits) is required: "e2" alone is not a number (float() refuses it)
_DECIMAL = re.compile(r"^[-+]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?$")
_FRACTION = re.compile(r"^([-+]?)\\[dt]?frac\{\s*([-+]?\d+)\s*\}\{\s*([-+]?\d+)\s*\}$|^([-+]?\d+)\s*/\s*([-+]?\d+)$")


def parse_number(text: str) -> float | None:
    """A plain number: 12, -3.5, 1,234, 1e-3, 3/4, \\frac{3}{4}, 50% (the % dropped), 5. (the
    sentence's full stop dropped); None otherwise."""
    text = strip_latex(text).replace("\u2212", "-").replace("\\%", "%").replace("\\!", "").strip()
    if text.endswith(".") and not text.endswith(".."):
        text = text[:-1]
    text = text.removesuffix("%").strip()
    if not text or len(text) > 64:  # 64 chars is far beyond any real number and bounds float()/int()
        return None
    m = _FRACTION.match(text)
    if m:
        sign, num, den = (m.group(1), m.group(2), m.group(3)) if m.group(2) else ("", m.group(4), m.group(5))
        if int(den) == 0:
            return None
        value = float(Fraction(int(num), int(den)))
        return -value if sign == "-" else value
    if not _DECIMAL.match(text):
        return None
    value = float(text.replace(",", ""))
    return value if math.isfinite(value) else None


def numeric_bound(truth: float, params: dict[str, Any]) -> float:
    """How far an answer may be from `truth`: `tolerance` (absolute), or `tolerance * |truth|` with
    `relative: true`, never below the optional absolute floor `abs_floor`."""
    tol = float(params.get("tolerance", 0.0))
    bound = tol * abs(truth) if params.get("relative") else tol
    return max(bound, float(params.get("abs_floor", 0.0)))


def within_bound(answer: float, truth: float, params: dict[str, Any]) -> bool:
    # A few ulps of slack absorb float rounding of decimal text (0.4 - 0.3 > 0.1 in floats); they
    # scale with the numbers compared, so they never act as an absolute tolerance of their own.
    return abs(answer - truth) <= numeric_bound(truth, params) + 4 * math.ulp(max(abs(answer), abs(truth)))


def verify_numeric(output: str, truth: str, params: dict[str, Any]) -> VerifyResult:
    """|answer - truth| <= numeric_bound (absolute, or relative to |truth| with relative: true)."""
    parsed = _parse_both(output, truth, params, parse_number, "numeric", "not_a_number")
    if isinstance(parsed, VerifyResult):
        return parsed
    answer, want, got = parsed
    return VerifyResult.judged(within_bound(got, want, params), answer)


_NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty".split())}


def parse_count(text: str) -> int | None:
    """A non-negative integer: digits ("7", "7.0") or a number word up to twenty."""
    word = normalize_text(text)
    if word in _NUMBER_WORDS:
        return _NUMBER_WORDS[word]
    value = parse_number(text)
    if value is None or value < 0 or value != int(value):
        return None
    return int(value)


def verify_count(output: str, truth: str, params: dict[str, Any]) -> VerifyResult:
    """Counting: the integer must match exactly."""
    parsed = _parse_both(output, truth, params, parse_count, "count", "not_a_count")
    if isinstance(parsed, VerifyResult):
        return parsed
    answer, want, got = parsed
    return VerifyResult.judged(got == want, answer)


# ---- OCR ------------------------------------------------------------------------------------
def verify_ocr(output: str, truth: str, params: dict[str, Any]) -> VerifyResult:
    """Score 1 - normalized edit distance; passes when the distance is within max_distance.

    Distance from rapidfuzz (C++ Levenshtein, divided by the longer length).
    """
    answer = extract_or_fail(output, params)
    if isinstance(answer, VerifyResult):
        return answer
    fold = (lambda s: re.sub(r"\s+", " ", s.strip())) if params.get("case_sensitive") else normalize_text
    dist = Levenshtein.normalized_distance(fold(answer), fold(truth))
    return VerifyResult.judged(dist <= float(params.get("max_distance", 0.0)) + 1e-12, answer, score=1.0 - dist, distance=dist)


# ---- classification label sets --------------------------------------------------------------
def parse_labels(text: str) -> frozenset[str]:
    """Labels from a JSON list or a comma / semicolon / newline separated string, normalized."""
    text = strip_latex(text)
    items: list[Any] | None = None
    if text.startswith("["):
        try:
            loaded = json.loads(text)
            items = loaded if isinstance(loaded, list) else None
        except (json.JSONDecodeError, RecursionError):
            items = None
    if items is None:
        items = re.split(r"[,;\n]", text)
    return frozenset(n for n in (normalize_text(str(i)) for i in items) if n)


def verify_labels(output: str, truth: str, params: dict[str, Any]) -> VerifyResult:
    """Classification label-set Jaccard |A&B| / |A|B|; passes at `threshold` (default 1.0: the exact set)."""
    answer = extract_or_fail(output, params)
    if isinstance(answer, VerifyResult):
        return answer
    want, got = parse_labels(truth), parse_labels(answer)
    if not want:
        raise GroundTruthError(f"label truth {truth!r}")
    if not got:
        return VerifyResult.unparsed("no_labels", answer)
    jaccard = len(want & got) / len(want | got)
    return VerifyResult.judged(jaccard >= float(params.get("threshold", 1.0)) - 1e-12, answer, score=jaccard)
