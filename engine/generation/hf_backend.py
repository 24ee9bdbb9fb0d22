"""transformers `generate`, batched with left padding: the reference backend and the CMAB model."""
from __future__ import annotations

from typing import Sequence

from transformers import LogitsProcessor, LogitsProcessorList

from engine.generation.base import Generation, GenerationBackend, GenerationConfig, GenerationRequest
from engine.vision_grid import VisionGrid
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

    def vision_grid(self) -> VisionGrid:
        return VisionGrid.from_processor(self.processor.image_processor)  # the processor every request goes through

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
        seeded = sample and all(r.seed is not None for r in requests)
        if seeded:
            # Each row's noise keyed by its own seed (like vLLM's per-request seeds): a draw is the same
            # alone or in any batch, so batching (and resuming) never changes a result.
            sampling = dict(do_sample=False, logits_processor=LogitsProcessorList(
                [PerRequestSampler([r.seed for r in requests], self.cfg.temperature, self.cfg.top_p, self.device)]))
        elif sample:
            sampling = dict(do_sample=True, temperature=self.cfg.temperature, top_p=self.cfg.top_p)
        else:
            sampling = dict(do_sample=False)
        with torch.inference_mode():
            ids = self.model.generate(
                **inputs,
                max_new_tokens=self.cfg.max_new_tokens,
                **sampling,
                **({"stop_strings": list(self.cfg.stop), "tokenizer": self.processor.tokenizer} if self.cfg.stop else {}),
            )
        new = ids[:, inputs["input_ids"].shape[1] :]
        prompt_lengths = inputs["attention_mask"].sum(dim=1).tolist()  # generate prefills every row's whole prompt: nothing cached
        tok = self.processor.tokenizer
        results = []
        for row, prompt_len in zip(new, prompt_lengths):
            keep = row[row != tok.pad_token_id]
            finished = bool((keep == tok.eos_token_id).any())
            keep = keep[keep != tok.eos_token_id]
            text = tok.decode(keep, skip_special_tokens=True)
            cut = _cut_at_stop(text, self.cfg.stop)
            if cut is not None:  # the stop string may end inside a token: keep text up to and including it
                text, finished = cut, True
            results.append(Generation(text, int(len(keep) + finished), "stop" if finished else "length", prompt_tokens=int(prompt_len)))
        return results


class PerRequestSampler(LogitsProcessor):
    """Temperature + top-p sampling keyed by each request's seed, run under greedy decoding.

    transformers samples a whole batch from the global generator, so a row's tokens depend on what
    else is in its batch. Gumbel-max gives the same distribution per row from noise of its own:
    argmax(logits / T + Gumbel noise) is a sample of softmax(logits / T) (top-p applied first, as
    transformers' TopPLogitsWarper does: keep the smallest set of tokens whose mass reaches top_p).
    The noise is a counter-based hash of (seed, step, token) in int64 tensor ops (splitmix64's
    mixer), not a torch.Generator per row: one kernel per step for any batch, and the same uniforms
    on CPU and GPU.
    """

    def __init__(self, seeds, temperature: float, top_p: float, device):
        import torch

        self.torch, self.temperature, self.top_p, self.step = torch, temperature, top_p, 0
        signed = [(int(s) + (1 << 63)) % (1 << 64) - (1 << 63) for s in seeds]  # any int -> its int64 bits
        self.keys = _mix64(torch.tensor(signed, dtype=torch.int64, device=device))

    def __call__(self, input_ids, scores):
        torch = self.torch
        scores = scores.float() / self.temperature
        if self.top_p < 1.0:
            ordered, order = scores.sort(dim=-1, descending=True)
            probs = ordered.softmax(dim=-1)
            drop_sorted = probs.cumsum(dim=-1) - probs >= self.top_p  # mass before the token already reaches top_p
            scores = scores.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), float("-inf"))
        step_key = _mix64(self.keys + torch.full_like(self.keys, self.step + 1) * _GOLDEN)
        self.step += 1
        tokens = torch.arange(1, scores.shape[-1] + 1, dtype=torch.int64, device=scores.device)
        bits = _srl(_mix64(step_key[:, None] + tokens[None, :] * _ODD), 40)  # top 24 bits: exact in float32
        uniform = (bits.float() + 0.5) / float(1 << 24)  # in (0, 1): no log(0)
        return scores + -torch.log(-torch.log(uniform))


# splitmix64 on int64 tensors: constants as signed 64-bit, multiplies wrap, shifts made logical.
_GOLDEN = 0x9E3779B97F4A7C15 - (1 << 64)
_ODD = 0xD1B54A32D192ED03 - (1 << 64)
_M1 = 0xBF58476D1CE4E5B9 - (1 << 64)
_M2 = 0x94D049BB133111EB - (1 << 64)


def _srl(x, s: int):
    return (x >> s) & ((1 << (64 - s)) - 1)


def _mix64(z):
    z = (z ^ _srl(z, 30)) * _M1
    z = (z ^ _srl(z, 27)) * _M2
    return z ^ _srl(z, 31)


def _cut_at_stop(text: str, stops) -> str | None:
    ends = [text.find(s) + len(s) for s in stops if s and s in text]
    return text[: min(ends)] if ends else None
