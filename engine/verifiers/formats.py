"""Format checks on the whole completion (the only place the reasoning text is looked at).

- think_answer: `<think>...</think><answer>...</answer>`, each tag once, nothing outside them,
  and an answer of the kind the stage asks for (Curr-ReFT: a yes/no stage never demands a box).
- vtriune: V-Triune's four parts, 0.25 each for `<think>\\n`, `\\n</think>\\n`, `\\n<answer>\\n`,
  `\\n</answer>` appearing exactly once.
- boxed: a balanced `\\boxed{}` is present.
"""
from __future__ import annotations

from typing import Any, Callable

from engine.verifiers.base import VerifyResult
from engine.verifiers.boxes import BoxError, parse_boxes
from engine.verifiers.extract import last_boxed
from engine.verifiers.text import parse_choice, parse_number, parse_yes_no

_TAGS = ("<think>", "</think>", "<answer>", "</answer>")


def _answer_kind_ok(kind: str, content: str) -> bool:
    inner = last_boxed(content)
    text = (inner if inner is not None else content).strip()
    if not text:
        return False
    if kind == "any":
        return True
    if kind == "yesno":
        return parse_yes_no(text) is not None
    if kind == "choice":
        return parse_choice(text) is not None
    if kind == "number":
        return parse_number(text) is not None
    if kind == "box":
        try:
            return bool(parse_boxes(text))
        except BoxError:
            return False
    raise ValueError(f"answer kind {kind!r} not one of any|yesno|choice|number|box")


# Curr-ReFT stages -> what the <answer> must hold. "open" depends on the task (a box for
# detection, free text otherwise), so callers pass answer_kind for it.
STAGE_ANSWER_KIND = {"judge": "yesno", "choice": "choice", "open": "any"}


def check_think_answer(output: str, params: dict[str, Any] | None = None) -> VerifyResult:
    params = params or {}
    kind = params.get("answer_kind") or STAGE_ANSWER_KIND.get(params.get("stage", "open"), "any")
    counts = {t: output.count(t) for t in _TAGS}
    for tag, n in counts.items():
        if n != 1:
            return VerifyResult.unparsed(f"{'missing' if n == 0 else 'repeated'}_tag:{tag}")
    pos = [output.find(t) for t in _TAGS]
    if pos != sorted(pos):
        return VerifyResult.unparsed("tag_order")
    if output[: pos[0]].strip() or output[pos[1] + len("</think>") : pos[2]].strip() or output[pos[3] + len("</answer>") :].strip():
        return VerifyResult.unparsed("text_outside_tags")
    content = output[pos[2] + len("<answer>") : pos[3]]
    if not _answer_kind_ok(kind, content):
        return VerifyResult(0.0, False, content.strip()[:200], f"answer_not_{kind}")
    return VerifyResult.judged(True, content.strip()[:200])


def check_vtriune(output: str, params: dict[str, Any] | None = None) -> VerifyResult:
    parts = ("<think>\n", "\n</think>\n", "\n<answer>\n", "\n</answer>")
    present = [output.count(p) == 1 for p in parts]
    score = 0.25 * sum(present)
    return VerifyResult(score, all(present), None, "" if all(present) else "format_parts_missing", {"parts": present})


def check_boxed(output: str, params: dict[str, Any] | None = None) -> VerifyResult:
    found = last_boxed(output)
    return VerifyResult(float(found is not None), found is not None, found, "" if found is not None else "no_boxed")


FORMATS: dict[str, Callable[[str, dict[str, Any] | None], VerifyResult]] = {
    "think_answer": check_think_answer,
    "vtriune": check_vtriune,
    "boxed": check_boxed,
}


def check_format(name: str, output: str, params: dict[str, Any] | None = None) -> VerifyResult:
    try:
        fn = FORMATS[name]
    except KeyError:
        raise KeyError(f"unknown format check {name!r}; known: {sorted(FORMATS)}") from None
    try:
        return fn(output, params)
    except (Exception, RecursionError, MemoryError) as exc:
        return VerifyResult.crashed(exc)
