"""One sample's prompt + verified response -> model inputs and the spans CMAB reduces over."""
from __future__ import annotations

from typing import Sequence

import torch
from PIL import Image

from engine.cmab.attention import Spans, register
from engine.data.sample import Message
from engine.model.chat import to_chat


def encode(processor, messages: Sequence[Message], images: Sequence[Image.Image], response: str, image_token_id: int):
    """(inputs for one forward, Spans). Images must be PIL: the processor rescales them once.

    The reference passed float tensors the processor rescaled a second time (a near-blank
    image); a non-PIL image is refused here rather than guessed at.
    """
    for img in images:
        if not isinstance(img, Image.Image):
            raise TypeError(f"CMAB takes PIL images (uint8), got {type(img).__name__}: float tensors get rescaled twice")
    chat = to_chat(messages, images)
    prompt_text = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    full_text = processor.apply_chat_template(chat + [{"role": "assistant", "content": response}], tokenize=False)
    if not full_text.startswith(prompt_text):
        raise ValueError("the chat template does not render the prompt as a prefix of prompt + response")
    # One processor pass: the response is tokenized on its own to find where it starts, as the SFT
    # collator does; it follows "assistant\n", a pre-tokenizer boundary, and that is checked.
    inputs = processor(text=[full_text], images=list(images) or None, return_tensors="pt")
    ids = inputs["input_ids"][0]
    tail = processor.tokenizer(full_text[len(prompt_text):], add_special_tokens=False, return_tensors="pt")["input_ids"][0]
    n_prompt = len(ids) - len(tail)
    if n_prompt < 1 or not torch.equal(ids[n_prompt:], tail):
        raise ValueError("response tokens differ inside prompt + response (tokenizer merges across the boundary)")
    end_id = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    ends = torch.nonzero(ids[n_prompt:] == end_id)
    n_response = int(ends[0]) + 1 if len(ends) else len(ids) - n_prompt  # through the end-of-turn token
    if n_response < 1:
        raise ValueError("empty response")
    return dict(inputs), Spans(image=ids == image_token_id, prompt_len=n_prompt, response_len=n_response)


def load_model(path: str, lean: bool = True, dtype: str = "float32", device: str = "cpu"):
    """(model, processor) with the text decoder on lean attention (or eager for the reference); vision on SDPA."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    impl = register() if lean else "eager"
    model = AutoModelForImageTextToText.from_pretrained(
        path, local_files_only=True, dtype=getattr(torch, dtype), attn_implementation={"text_config": impl, "vision_config": "sdpa"}
    )
    processor = AutoProcessor.from_pretrained(path, local_files_only=True)
    return model.to(device).eval(), processor
