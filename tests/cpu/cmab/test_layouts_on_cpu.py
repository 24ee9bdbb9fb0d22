"""Lean == eager on a randomly initialised tiny Qwen2.5-VL for several prompt layouts (image
first, image in the middle of the text, two images), image spans found where the processor put
the image tokens, and the reference's blank-image bug (float tensors rescaled twice) shown and
avoided. Real forwards throughout."""
import numpy as np
import pytest
import torch
from PIL import Image

from engine.cmab import CmabConfig, eager_masses, encode, lean_masses, load_model, rho
from engine.data.sample import Message

LAYOUTS = {
    "image_first": ("<image> How many shapes are there? Put the final answer in \\boxed{}.", 1),
    "image_middle": ("Look at the picture: <image> What color is the circle? Put the final answer in \\boxed{}.", 1),
    "two_images": ("First <image> then <image> Which one has more shapes? Put the final answer in \\boxed{}.", 2),
}


@pytest.fixture(scope="module")
def models(tiny_random_model):
    lean, processor = load_model(str(tiny_random_model), lean=True)
    eager, _ = load_model(str(tiny_random_model), lean=False)
    return lean, eager, processor


def _images(n):
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (56 + 28 * i, 84, 3), dtype=np.uint8)) for i in range(n)]


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_lean_matches_eager_for_layout(models, layout):
    lean, eager, processor = models
    text, n_images = LAYOUTS[layout]
    images = _images(n_images)
    inputs, spans = encode(processor, [Message("user", text)], images, "It is \\boxed{3}", lean.config.image_token_id)

    # spans: one run of image tokens per image, as long as the processor's merged patch grid, each
    # right after its <|vision_start|> token
    merge = processor.image_processor.merge_size ** 2
    expected = [int(torch.prod(thw)) // merge for thw in inputs["image_grid_thw"]]
    runs = spans.image_spans()
    assert [end - start for start, end in runs] == expected
    start_id = processor.tokenizer.convert_tokens_to_ids("<|vision_start|>")
    assert all(int(inputs["input_ids"][0, start - 1]) == start_id for start, _ in runs)
    assert spans.pretext_len == runs[0][0]  # code mode's text: everything before the first image token

    a = lean_masses(lean, inputs, spans, chunk_rows=3)
    b = eager_masses(eager, inputs, spans)
    for mode in ("paper", "code"):
        ra, rb = rho(a, spans, CmabConfig(mode=mode)), rho(b, spans, CmabConfig(mode=mode))
        assert abs(ra.rho_bar - rb.rho_bar) <= 1e-4 * abs(rb.rho_bar), (mode, ra.rho_bar, rb.rho_bar)
        np.testing.assert_allclose(ra.layer_profile, rb.layer_profile, rtol=1e-4)


def test_blank_image_regression(models):
    """The reference passed ToTensor() floats in [0, 1]; the processor rescaled them by 1/255 again,
    so the model saw an almost uniform image. encode() takes PIL only and sees the real pixels."""
    lean, _, processor = models
    image = _images(1)[0]
    ours, _ = encode(processor, [Message("user", LAYOUTS["image_first"][0])], [image], "\\boxed{3}", lean.config.image_token_id)
    as_uint8 = processor.image_processor(images=[np.array(image)], return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(ours["pixel_values"], as_uint8)  # PIL and uint8 give the same pixels

    floats = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255.0  # what the reference fed
    rescaled = processor.image_processor(images=[floats], return_tensors="pt", do_rescale=True)["pixel_values"]
    black = processor.image_processor(images=[torch.zeros_like(floats)], return_tensors="pt", do_rescale=True)["pixel_values"]
    # near blank: the doubly rescaled image differs from an all-black one by < 1 % of what the real one does
    assert (rescaled - black).abs().max() < 0.01 * (as_uint8 - black).abs().max()
