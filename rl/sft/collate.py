"""Samples -> one padded training batch with loss only on the assistant answer tokens."""
from __future__ import annotations

from typing import Sequence

from engine.data.images import ImagePolicy
from engine.data.response import format_response
from engine.data.sample import Sample
from engine.model.chat import to_chat

IGNORE_INDEX = -100


def build_batch(samples: Sequence[Sample], processor, response_template: str, policy: ImagePolicy | None = None):
    """Right-padded input_ids/attention_mask/labels plus the processor's pixel tensors.

    The answer is tokenized on its own to find its length: it follows "assistant\\n", a
    pre-tokenizer boundary, so its tokens are the same in context (checked, not assumed).
    """
    import torch

    tok = processor.tokenizer
    policy = policy or ImagePolicy()
    texts, images, answer_ids = [], [], []
    for s in samples:
        imgs = s.load_images(policy)
        response = format_response(s.answer, response_template)
        chat = to_chat(s.prompt_messages, imgs) + [{"role": "assistant", "content": response}]
        texts.append(processor.apply_chat_template(chat, tokenize=False))
        images.extend(imgs)
        answer_ids.append(tok(response + tok.eos_token, add_special_tokens=False)["input_ids"])
    saved_side = tok.padding_side
    tok.padding_side = "right"
    try:
        enc = processor(text=texts, images=images or None, return_tensors="pt", padding=True)
    finally:
        tok.padding_side = saved_side
    labels = torch.full_like(enc["input_ids"], IGNORE_INDEX)
    for row, ids in enumerate(answer_ids):
        length = int(enc["attention_mask"][row].sum())
        # the template ends "<|im_end|>\n": the answer + <|im_end|> sit just before that newline
        end = length - 1
        start = end - len(ids)
        got = enc["input_ids"][row, start:end].tolist()
        if got != ids:
            raise ValueError(f"answer tokens not found where expected for {samples[row].id}: {got} != {ids}")
        labels[row, start:end] = enc["input_ids"][row, start:end]
    enc["labels"] = labels
    return enc
