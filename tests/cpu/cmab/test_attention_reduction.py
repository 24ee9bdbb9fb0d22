"""CMAB attention reduction on the warm-started tiny model (real forwards, no mocks): the lean
attention function matches materialized eager attention, and teacher-forced rows are the
attention `generate` reports while producing each token."""
import numpy as np
import pytest
import torch

from engine.cmab import CmabConfig, eager_masses, encode, lean_masses, load_model, rho
from engine.data.images import ImagePolicy


@pytest.fixture(scope="module")
def models(warm_model):
    lean, processor = load_model(str(warm_model), lean=True)
    eager, _ = load_model(str(warm_model), lean=False)
    return lean, eager, processor


def _encode(processor, model, sample, response):
    return encode(processor, sample.prompt_messages, sample.load_images(ImagePolicy()), response, model.config.image_token_id)


@pytest.mark.parametrize("chunk_rows", [1, 4, 64])
def test_lean_matches_eager_attention(models, samples, chunk_rows):
    lean, eager, processor = models
    for s in samples:
        response = f"Let me look. \\boxed{{{s.answer}}}"  # a multi-token response so several rows and chunks are used
        inputs, spans = _encode(processor, lean, s, response)
        assert int(spans.image.sum()) == 16 and spans.response_len > 4  # 16 visual tokens; rows span several chunks
        a = lean_masses(lean, inputs, spans, chunk_rows=chunk_rows, keep_rows=True)
        b = eager_masses(eager, inputs, spans, keep_rows=True)
        for layer in b:
            for name in ("image", "text", "pretext", "rows"):
                torch.testing.assert_close(getattr(a[layer], name), getattr(b[layer], name), atol=1e-6, rtol=1e-5)
        for mode in ("paper", "code"):
            ra, rb = rho(a, spans, CmabConfig(mode=mode)), rho(b, spans, CmabConfig(mode=mode))
            assert abs(ra.rho_bar - rb.rho_bar) <= 1e-4 * abs(rb.rho_bar)
            assert len(ra.layer_profile) == lean.config.text_config.num_hidden_layers


def test_teacher_forced_rows_are_generate_attention(models, samples):
    """Row t of one forward over prompt + response == the attention generate() returns for token t."""
    _, eager, processor = models
    s = samples[0]
    images = s.load_images(ImagePolicy())
    from engine.model.chat import to_chat

    text = processor.apply_chat_template(to_chat(s.prompt_messages, images), add_generation_prompt=True, tokenize=False)
    prompt = processor(text=[text], images=images, return_tensors="pt")
    with torch.inference_mode():
        out = eager.generate(**prompt, max_new_tokens=12, do_sample=False, output_attentions=True, return_dict_in_generate=True)
    new_ids = out.sequences[0, prompt["input_ids"].shape[1]:]
    response = processor.tokenizer.decode(new_ids, skip_special_tokens=True)
    inputs, spans = _encode(processor, eager, s, response)
    assert inputs["input_ids"][0, spans.prompt_len:spans.prompt_len + spans.response_len].tolist() == new_ids.tolist()
    forward = eager_masses(eager, inputs, spans, keep_rows=True)
    for layer, masses in forward.items():
        # generate step t, this layer: [B, H, q, keys]; the last query row produced token t
        gen_rows = [step[layer][0, :, -1].float().mean(0) for step in out.attentions]
        for t, row in enumerate(gen_rows):
            np.testing.assert_allclose(masses.rows[t, : row.shape[0]].numpy(), row.numpy(), atol=1e-5)


def test_lean_model_without_lean_attention_is_refused(models, samples):
    _, eager, processor = models
    inputs, spans = _encode(processor, eager, samples[0], "\\boxed{1}")
    with pytest.raises(RuntimeError, match="attn_implementation"):
        lean_masses(eager, inputs, spans)


@pytest.mark.parametrize("bad", [lambda img: torch.from_numpy(np.array(img)).float() / 255.0, lambda img: np.asarray(img) / 255.0])
def test_float_images_are_refused(models, samples, bad):
    """The reference fed float tensors the processor rescaled again (a near-blank image)."""
    lean, _, processor = models
    s = samples[0]
    image = s.load_images(ImagePolicy())[0]
    with pytest.raises(TypeError, match="PIL"):
        encode(processor, s.prompt_messages, [bad(image)], "\\boxed{1}", lean.config.image_token_id)
