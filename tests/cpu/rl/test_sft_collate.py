"""Loss lands on the answer tokens (+ end of turn) only; prompts and images are never trained on."""
import io

from PIL import Image

from engine.data.sample import ImageRef, Message, Sample
from rl.sft.collate import IGNORE_INDEX, build_batch


def _png(color):
    buf = io.BytesIO()
    Image.new("RGB", (112, 112), color).save(buf, format="PNG")
    return buf.getvalue()


def test_labels_cover_exactly_the_answer(tiny_random_model):
    from transformers import AutoProcessor

    proc = AutoProcessor.from_pretrained(tiny_random_model, local_files_only=True)
    samples = [
        Sample("a", [ImageRef(_png("red"))], [Message("user", "<image>What color is the circle?")], "red", "color", "exact"),
        Sample("b", [ImageRef(_png("blue"))], [Message("user", "<image>How many shapes are there? Put the final answer in \\boxed{}.")], "12", "counting", "numeric"),
    ]
    batch = build_batch(samples, proc, "\\boxed{{{answer}}}")
    tok = proc.tokenizer
    for row, s in enumerate(samples):
        labelled = batch["labels"][row][batch["labels"][row] != IGNORE_INDEX].tolist()
        assert tok.decode(labelled) == f"\\boxed{{{s.answer}}}<|im_end|>"
    image_pad = tok.convert_tokens_to_ids("<|image_pad|>")
    assert not ((batch["labels"] == image_pad).any())
    assert batch["pixel_values"].shape[0] == 2 * 64  # two 112 px images, 8x8 patches each
