"""verl-format parquet -> the dataset TRL's GRPOTrainer reads (conversational, multimodal).

verl row: data_source, prompt [{role, content}] with one literal `<image>` per image, images
[{bytes, path, (max_pixels, min_pixels)}], ability, reward_model {style, ground_truth}, extra_info.

TRL row (what `GRPOTrainer` expects for a vision-language model):
- `prompt`: chat messages whose content is a list of parts; every `<image>` becomes an image
  placeholder part `{"type": "image"}` at its own position (engine/model/chat.py `split_parts`), so
  the image lands where the text put it, not where TRL would insert it for string content (before
  the first user text). TRL fills the placeholders, in order, from the `images` column.
- `images`: RGB PIL images, decoded per row when the trainer reads it through engine/data/images
  (`load_image`: the one way gradus opens an image), downscaled to the row's or the job's pixel
  budget the way verl honours per-image `max_pixels`.
- `data_source`, `reward_model`, `extra_info`: carried unchanged; TRL hands every non-prompt column
  to the reward function, which passes them to the verl reward entrypoint.

Prompts longer than `max_prompt_length` tokens (image tokens included) are dropped, as verl's
`data.filter_overlong_prompts` does; a file where nothing is left is an error (verl's silent
"filter dataset len: 0").
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import pyarrow.parquet as pq
from PIL import Image

from engine.config import ConfigError
from engine.data.images import ImagePolicy, load_image
from engine.data.reasons import SampleError
from engine.data.sample import IMAGE_PLACEHOLDER
from engine.model.chat import split_parts

_COLUMNS = ("data_source", "prompt", "images", "reward_model", "extra_info")


def prompt_parts(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """verl prompt messages -> messages with list-of-parts content (`{"type": "image"}` placeholders).

    Every message gets list content (Arrow needs one type per column); text parts carry "text",
    image placeholders only their type (TRL fills "image" in order)."""
    out, used = [], 0
    for msg in messages:
        content = msg["content"] or ""
        if IMAGE_PLACEHOLDER in content:
            parts, used = split_parts(content, range(content.count(IMAGE_PLACEHOLDER)), 0, lambda _: {"type": "image"})
        else:
            parts = [{"type": "text", "text": content}]
        out.append({"role": msg["role"], "content": parts})
    return out


def _budget(img: Image.Image, max_pixels: int) -> Image.Image:
    """Downscale (aspect kept) so width*height <= max_pixels; as verl's per-image max_pixels does."""
    w, h = img.size
    if not max_pixels or w * h <= max_pixels:
        return img
    scale = math.sqrt(max_pixels / (w * h))
    return img.resize((max(1, int(w * scale)), max(1, int(h * scale))), Image.BICUBIC)


def decode_images(refs: Sequence[dict[str, Any]] | None, policy: ImagePolicy, max_pixels: int = 0) -> list[Image.Image]:
    images = []
    for ref in refs or []:
        img = load_image(ref.get("bytes"), ref.get("path"), policy)
        images.append(_budget(img, ref.get("max_pixels") or max_pixels))
    return images


def read_verl_rows(path: Path) -> list[dict[str, Any]]:
    table = pq.read_table(path)
    missing = [c for c in _COLUMNS if c not in table.column_names]
    if missing:
        raise ConfigError(f"grpo data {path}: not a verl parquet (missing {missing})")
    rows = table.select(list(_COLUMNS)).to_pylist()
    if not rows:
        raise ConfigError(f"grpo data {path}: no rows")
    return rows


def prompt_lengths(rows: Sequence[dict[str, Any]], processor, policy: ImagePolicy, max_pixels: int = 0, batch: int = 64) -> list[int]:
    """Prompt tokens per row after the chat template and image expansion (what generation starts from)."""
    from engine.model.chat import to_chat
    from engine.data.sample import Message

    lengths: list[int] = []
    for start in range(0, len(rows), batch):
        texts, images = [], []
        for i, row in enumerate(rows[start : start + batch], start):
            try:
                imgs = decode_images(row["images"], policy, max_pixels)
            except SampleError as err:
                raise ConfigError(f"grpo data row {i}: image unusable ({err.reason.value}: {err.detail})") from err
            msgs = [Message(m["role"], m["content"]) for m in row["prompt"]]
            try:
                chat = to_chat(msgs, imgs)
            except ValueError as exc:
                raise ConfigError(f"grpo data row {i}: {exc}") from exc
            texts.append(processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False))
            images.extend(imgs)
        enc = processor(text=texts, images=images or None, padding=False)
        lengths.extend(len(ids) for ids in enc["input_ids"])
    return lengths


def build_dataset(path: Path, processor, *, max_prompt_length: int, max_pixels: int = 0, policy: ImagePolicy | None = None):
    """(TRL dataset, stats): rows with prompts over max_prompt_length tokens dropped."""
    from datasets import Dataset

    policy = policy or ImagePolicy()
    rows = read_verl_rows(path)
    lengths = prompt_lengths(rows, processor, policy, max_pixels)
    keep = [r for r, n in zip(rows, lengths) if n <= max_prompt_length]
    stats = {"rows": len(rows), "kept": len(keep), "dropped_overlong": len(rows) - len(keep),
             "prompt_tokens_max": max(lengths), "prompt_tokens_mean": round(sum(lengths) / len(lengths), 1)}
    if not keep:
        raise ConfigError(f"grpo data {path}: every prompt is longer than data.max_prompt_length={max_prompt_length} tokens "
                          f"(shortest {min(lengths)})")
    records = {
        "prompt": [prompt_parts(r["prompt"]) for r in keep],
        "image_refs": [[{"bytes": i.get("bytes"), "path": i.get("path"), "max_pixels": i.get("max_pixels") or 0} for i in r["images"] or []] for r in keep],
        "data_source": [r["data_source"] for r in keep],
        "reward_model": [r["reward_model"] for r in keep],
        "extra_info": [r["extra_info"] for r in keep],
    }
    ds = Dataset.from_dict(records)

    def to_trl(batch: dict[str, list]) -> dict[str, list]:
        out = {k: v for k, v in batch.items() if k != "image_refs"}
        out["images"] = [decode_images(refs, policy, max_pixels) for refs in batch["image_refs"]]
        out["prompt"] = [[_clean(m) for m in msgs] for msgs in batch["prompt"]]
        return out

    ds.set_transform(to_trl)
    return ds, stats


def _clean(message: dict[str, Any]) -> dict[str, Any]:
    """Arrow gives every part both keys; an image placeholder must not carry `text: None`."""
    return {"role": message["role"], "content": [{k: v for k, v in part.items() if v is not None} for part in message["content"]]}
