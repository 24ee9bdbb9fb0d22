"""The offline-built tiny Qwen2.5-VL is an ordinary HF folder that transformers and TRL load."""
import json

import pytest
from PIL import Image


def test_folder_loads_locally_with_qwen_template(tiny_random_model):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    proc = AutoProcessor.from_pretrained(tiny_random_model, local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(tiny_random_model, local_files_only=True)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert model.config.text_config.hidden_size // model.config.text_config.num_attention_heads >= 32
    chat = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What color is the circle?"}]}]
    text = proc.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    assert text.endswith("<|im_start|>assistant\n") and "<|vision_start|><|image_pad|><|vision_end|>" in text
    enc = proc(text=[text], images=[Image.new("RGB", (112, 112), "red")], return_tensors="pt")
    n_pad = int((enc["input_ids"] == model.config.image_token_id).sum())
    assert n_pad == 16  # 112 px -> 8x8 patches of 14 px -> 4x4 merged tokens
    out = model.generate(**enc, max_new_tokens=3, do_sample=False)
    assert enc["input_ids"].shape[1] < out.shape[1] <= enc["input_ids"].shape[1] + 3
    meta = json.loads((tiny_random_model / "gradus_model.json").read_text())
    assert meta["model_id"] and meta["config_hash"]


def test_tokenizer_splits_digits_and_keeps_special_tokens(tiny_random_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_random_model, local_files_only=True)
    ids = tok("1234", add_special_tokens=False)["input_ids"]
    assert [tok.decode([i]) for i in ids] == ["1", "2", "3", "4"]
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    for special in ("<|im_start|>", "<|vision_start|>", "<|image_pad|>"):
        assert len(tok(special, add_special_tokens=False)["input_ids"]) == 1


@pytest.mark.slow
def test_trl_grpo_trainer_loads_and_steps(tiny_random_model, tmp_path):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    prompt = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What color is the circle?"}]}]
    ds = Dataset.from_list([{"prompt": prompt, "image": Image.new("RGB", (112, 112), "red")}] * 4)
    args = GRPOConfig(
        output_dir=str(tmp_path), per_device_train_batch_size=2, num_generations=2, max_completion_length=4,
        max_steps=1, use_cpu=True, report_to=[], save_strategy="no",
    )
    trainer = GRPOTrainer(model=str(tiny_random_model), reward_funcs=lambda completions, **kw: [0.0] * len(completions), args=args, train_dataset=ds)
    result = trainer.train()
    assert result.global_step == 1
