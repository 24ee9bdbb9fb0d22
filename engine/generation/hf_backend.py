"""transformers `generate`, batched with left padding: the reference backend and the CMAB model."""
from __future__ import annotations

from typing import Sequence

from engine.generation.base import Generation, GenerationBackend, GenerationConfig, GenerationRequest
from engine.model.chat import to_chat


class HFBackend(GenerationBackend):
    def __init__(self, cfg: GenerationConfig, model=None, processor=None):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.cfg = cfg
        self.torch = torch
        self.processor = processor or AutoProcessor.from_pretrained(cfg.model_path, local_files_only=True)
        self.processor.tokenizer.padding_side = "left"
        self.model = model or AutoModelForImageTextToText.from_pretrained(
            cfg.model_path, local_files_only=True, dtype=getattr(torch, cfg.dtype)
        )
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
        self.model.to(self.device).eval()

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        out: list[Generation] = []
        for start in range(0, len(requests), self.cfg.hf_batch_size):
            out.extend(self._generate_batch(requests[start : start + self.cfg.hf_batch_size]))
        return out

    def _generate_batch(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        torch = self.torch
        texts = [
            self.processor.apply_chat_template(to_chat(r.messages, r.images), add_generation_prompt=True, tokenize=False)
            for r in requests
        ]
        images = [img for r in requests for img in r.images]
        inputs = self.processor(text=texts, images=images or None, return_tensors="pt", padding=True).to(self.device)
        sample = self.cfg.temperature > 0
        if sample and requests[0].seed is not None:
            torch.manual_seed(requests[0].seed)  # HF samples a batch from one generator
        with torch.inference_mode():
            ids = self.model.generate(
                **inputs,
                max_new_tokens=self.cfg.max_new_tokens,
                do_sample=sample,
                temperature=self.cfg.temperature if sample else None,
                top_p=self.cfg.top_p if sample else None,
                **({"stop_strings": list(self.cfg.stop), "tokenizer": self.processor.tokenizer} if self.cfg.stop else {}),
            )
        new = ids[:, inputs["input_ids"].shape[1] :]
        tok = self.processor.tokenizer
        results = []
        for row in new:
            keep = row[row != tok.pad_token_id]
            finished = bool((keep == tok.eos_token_id).any())
            keep = keep[keep != tok.eos_token_id]
            text = tok.decode(keep, skip_special_tokens=True)
            cut = _cut_at_stop(text, self.cfg.stop)
            if cut is not None:  # the stop string may end inside a token: keep text up to and including it
                text, finished = cut, True
            results.append(Generation(text, int(len(keep) + finished), "stop" if finished else "length"))
        return results


def _cut_at_stop(text: str, stops) -> str | None:
    ends = [text.find(s) + len(s) for s in stops if s and s in text]
    return text[: min(ends)] if ends else None
