"""The assistant turn a model is trained to produce for a ground-truth answer.

Data, not model code: trainer exports (swift, llamafactory), SFT, warm start and the shapers that
check their own answers all write the same turn, and the verifiers extract the answer back from it.
"""
from __future__ import annotations

DEFAULT_RESPONSE_TEMPLATE = "\\boxed{{{answer}}}"


def format_response(answer: str, template: str = DEFAULT_RESPONSE_TEMPLATE) -> str:
    return template.format(answer=answer)
