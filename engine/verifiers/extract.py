"""Find the final answer inside a completion. Linear-time string scans, no backtracking regexes."""
from __future__ import annotations

import re

from engine.verifiers.base import ANSWER_TOO_LONG, MAX_ANSWER_CHARS, NO_ANSWER, VerifyResult


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...}, honouring nested braces; None when absent or unbalanced."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i = start + len("\\boxed{")
    depth = 1
    for j in range(i, len(text)):
        c = text[j]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[i:j]
    return None  # unbalanced: refuse rather than guess


def answer_tag(text: str) -> str | None:
    """Content of the last complete <answer>...</answer>."""
    end = text.rfind("</answer>")
    if end < 0:
        return None
    start = text.rfind("<answer>", 0, end)
    if start < 0:
        return None
    return text[start + len("<answer>") : end]


def extract_answer(output: str) -> str | None:
    """The final answer: last \\boxed{} inside the last <answer> (or the whole output), else the <answer> text.

    Never the whole completion: text outside both markers is reasoning, not an answer.
    """
    tagged = answer_tag(output)
    scope = tagged if tagged is not None else output
    boxed = last_boxed(scope)
    if boxed is not None:
        return boxed.strip()
    if tagged is not None:
        return tagged.strip()
    return None


def extract_or_fail(output: str, params: dict) -> str | VerifyResult:
    """The answer to judge, or the failure result (no answer, empty answer, over the length cap)."""
    answer = extract_answer(output)
    if answer is None or not answer:
        return VerifyResult.unparsed(NO_ANSWER, answer)
    if len(answer) > int(params.get("max_answer_chars", MAX_ANSWER_CHARS)):
        return VerifyResult.unparsed(ANSWER_TOO_LONG, answer[:64])
    return answer


_LATEX_WRAPPERS = re.compile(r"\\(?:text|mathrm|textbf|mathbf)\{([^{}]*)\}")


def strip_latex(text: str) -> str:
    """Drop math delimiters and \\text{} style wrappers the model may put around a plain answer."""
    text = text.strip().strip("$").strip()
    return _LATEX_WRAPPERS.sub(r"\1", text)


def normalize_text(text: str) -> str:
    """Case-fold, trim, collapse whitespace, drop trailing sentence punctuation."""
    return re.sub(r"\s+", " ", strip_latex(text).lower()).strip().rstrip(".!")
