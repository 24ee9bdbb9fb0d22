"""Ground-truth wrappers: the bare answer is what verifiers extract; the wrapper restores the original."""
import pytest

from engine.data.formats.answers import unwrap_answer
from engine.verifiers import extract_answer


def rewrap_answer(answer: str, wrapper: dict[str, str] | None) -> str:
    """The original text back from the bare answer and the wrapper the readers keep in meta."""
    if not wrapper:
        return answer
    return f"{wrapper['prefix']}{answer}{wrapper['suffix']}"


@pytest.mark.parametrize(
    "raw, answer",
    [
        ("4", "4"),
        ("\\boxed{Google}", "Google"),
        ("<answer>yes</answer>", "yes"),
        ("<answer>\n[{'bbox_2d': [1, 2, 3, 4], 'label': 'dog'}]\n</answer>", "[{'bbox_2d': [1, 2, 3, 4], 'label': 'dog'}]"),
        ("<thinking>count them</thinking><answer>3</answer>", "3"),  # Curr-ReFT stage 3
        ("answer>B</answer>", "B"),  # Curr-ReFT stage 1/2 files, opening "<" missing
        ("<answer>\\boxed{\\frac{3}{4}}</answer>", "\\frac{3}{4}"),  # nested braces
        ("The answer is \\boxed{12}.", "12"),
        ("\\boxed{unbalanced", "\\boxed{unbalanced"),  # refuse to guess
    ],
)
def test_unwrap_then_rewrap_is_lossless(raw, answer):
    bare, wrapper = unwrap_answer(raw)
    assert bare == answer
    assert rewrap_answer(bare, wrapper) == raw


def test_bare_answers_have_no_wrapper():
    assert unwrap_answer("cat, dog") == ("cat, dog", None)


@pytest.mark.parametrize("raw", ["\\boxed{Google}", "<answer>3</answer>", "<think>x</think><answer>\\boxed{7}</answer>"])
def test_agrees_with_the_verifiers_extraction(raw):
    assert unwrap_answer(raw)[0] == extract_answer(raw)
