"""Answer extraction and the result type every verifier returns."""
from __future__ import annotations

import re
from dataclasses import dataclass

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


@dataclass(frozen=True)
class VerifyResult:
    score: float  # in [0, 1]; continuous for iou/ocr, 0/1 otherwise
    passed: bool  # the score thresholded by the verifier's own rule
    extracted: str | None  # the answer the verifier judged (None: nothing could be extracted)
    reason: str = ""  # why it failed to parse, when it did

    @classmethod
    def unparsed(cls, reason: str) -> "VerifyResult":
        return cls(0.0, False, None, reason)


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...}, honouring nested braces."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i = start + len("\\boxed{")
    depth = 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j]
    return None  # unbalanced: refuse rather than guess


def extract_answer(output: str) -> str | None:
    """The final answer of a completion: last \\boxed{} (inside <answer> if present), else <answer> text."""
    tagged = _ANSWER_TAG.findall(output)
    scope = tagged[-1] if tagged else output
    boxed = last_boxed(scope)
    if boxed is not None:
        return boxed.strip()
    if tagged:
        return tagged[-1].strip()
    return None


def normalize_text(text: str) -> str:
    """Case-fold, trim, collapse whitespace, drop trailing sentence punctuation."""
    return re.sub(r"\s+", " ", text.strip().lower()).rstrip(".!")
