"""Ground truths arrive wrapped (`<answer>..</answer>`, `\\boxed{..}`, a `<think>` preamble): keep the
bare answer, the way the verifiers extract one, and keep the wrapper (prefix + answer + suffix is the
original text) so nothing of the source is lost."""
from __future__ import annotations

import re

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
# Curr-ReFT's stage-1/2 files write "answer>..</answer>" (the opening "<" is missing).
_BROKEN_OPEN_TAG = re.compile(r"\s*answer>(.*?)</answer>", re.DOTALL)
_BOXED = "\\boxed{"


def unwrap_answer(raw: str) -> tuple[str, dict[str, str] | None]:
    """(bare answer, {"prefix", "suffix"} or None when the text was already bare).

    Same order as engine.verifiers.extract_answer: the last <answer> scope, then the last
    \\boxed{} inside it; otherwise the whole text.
    """
    start, end = 0, len(raw)
    tags = list(_ANSWER_TAG.finditer(raw))
    if tags:
        start, end = tags[-1].span(1)
    elif (broken := _BROKEN_OPEN_TAG.match(raw)) is not None:
        start, end = broken.span(1)
    boxed = _last_boxed_span(raw, start, end)
    if boxed is not None:
        start, end = boxed
    while start < end and raw[start].isspace():
        start += 1
    while end > start and raw[end - 1].isspace():
        end -= 1
    answer = raw[start:end]
    if answer == raw:
        return answer, None
    return answer, {"prefix": raw[:start], "suffix": raw[end:]}


def _last_boxed_span(text: str, lo: int, hi: int) -> tuple[int, int] | None:
    """Span of the last balanced \\boxed{...} content within text[lo:hi]."""
    open_at = text.rfind(_BOXED, lo, hi)
    if open_at < 0:
        return None
    depth, i = 1, open_at + len(_BOXED)
    for j in range(i, hi):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return i, j
    return None  # unbalanced: keep the text as it is rather than guess
