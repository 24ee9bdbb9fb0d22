"""Canonical messages (text with `<image>` placeholders) -> multimodal chat parts for HF and vLLM.

The answer template (the assistant turn for a ground truth) is data: engine/data/response.py."""
from __future__ import annotations

from typing import Any, Sequence

from PIL import Image

from engine.data.sample import IMAGE_PLACEHOLDER, Message


def split_parts(content: str, images: Sequence[Image.Image], start: int, image_part) -> tuple[list[dict[str, Any]], int]:
    """Split one message's text at `<image>` placeholders; returns parts and the next image index."""
    parts: list[dict[str, Any]] = []
    pieces = content.split(IMAGE_PLACEHOLDER)
    for i, piece in enumerate(pieces):
        if i > 0:
            parts.append(image_part(images[start]))
            start += 1
        if piece:
            parts.append({"type": "text", "text": piece})
    return parts, start


def to_chat(messages: Sequence[Message], images: Sequence[Image.Image], backend: str = "hf") -> list[dict[str, Any]]:
    """Messages -> chat with image parts in the form `backend` ("hf" or "vllm") expects."""
    if backend == "hf":
        image_part = lambda img: {"type": "image", "image": img}  # noqa: E731
    elif backend == "vllm":
        image_part = lambda img: {"type": "image_pil", "image_pil": img}  # noqa: E731
    else:
        raise ValueError(f"unknown chat backend {backend!r}")
    chat, used = [], 0
    for msg in messages:
        if IMAGE_PLACEHOLDER not in msg.content:
            chat.append({"role": msg.role, "content": msg.content})
            continue
        parts, used = split_parts(msg.content, images, used, image_part)
        chat.append({"role": msg.role, "content": parts})
    if used != len(images):
        raise ValueError(f"{used} image placeholders for {len(images)} images")
    return chat
