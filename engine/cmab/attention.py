"""Attention mass of response tokens on image / text keys, per layer and head, without L x L matrices.

One teacher-forced forward over prompt + response: causal row t of that forward is the
attention the model paid when it generated response token t (the row of the position just
before the token, exactly what `generate(output_attentions=True)` returns step by step).

`lean_attention` is registered with transformers' AttentionInterface under IMPL. It returns the
normal SDPA output and, for the text decoder's layers while a `collect_masses` block is active,
recomputes only the response rows' softmax in chunks of `chunk_rows`, reducing each chunk at
once to per-head sums over image keys, non-image prompt keys and pre-image keys. Peak extra
memory is heads x chunk_rows x L floats per layer instead of heads x L x L.
`eager_masses` is the reference: an eager forward with output_attentions=True, reduced the same
way. Tests and benchmarks/cmab.py hold the two to 1e-4 relative on rho.
"""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass, field

import torch

IMPL = "gradus_lean"


@dataclass
class Spans:
    """Where things are in one tokenized prompt + response."""

    image: torch.Tensor  # [L] bool: key position holds an image token
    prompt_len: int  # tokens before the first response token
    response_len: int  # response tokens (the end-of-turn token included)

    @property
    def rows(self) -> range:
        """Query rows that produced the response tokens."""
        return range(self.prompt_len - 1, self.prompt_len - 1 + self.response_len)

    @property
    def pretext_len(self) -> int:
        """Tokens before the first image token (the reference code's 'text')."""
        hits = torch.nonzero(self.image)
        return int(hits[0]) if len(hits) else self.prompt_len

    def image_spans(self) -> list[tuple[int, int]]:
        """[start, end) runs of image tokens."""
        spans, start = [], None
        for i, flag in enumerate(self.image.tolist() + [False]):
            if flag and start is None:
                start = i
            elif not flag and start is not None:
                spans.append((start, i))
                start = None
        return spans


@dataclass
class LayerMasses:
    """Per head and response token: attention mass on each key group. Tensors [H, R] (float32)."""

    image: torch.Tensor
    text: torch.Tensor  # non-image prompt keys (paper mode's denominator)
    pretext: torch.Tensor  # keys before the first image token (code mode's denominator)
    rows: torch.Tensor | None = None  # [R, L] head-mean attention rows, only when asked for (heatmaps)


@dataclass
class _Collector:
    spans: Spans
    chunk_rows: int
    keep_rows: bool
    layers: dict[int, LayerMasses] = field(default_factory=dict)
    groups: torch.Tensor | None = None  # [L, 3] key groups: the same for every layer, built once per forward


_ACTIVE: contextvars.ContextVar[_Collector | None] = contextvars.ContextVar("gradus_cmab_collector", default=None)


def _key_groups(spans: Spans, length: int, device) -> torch.Tensor:
    """[L, 3] float: image keys, non-image prompt keys, pre-image keys."""
    pos = torch.arange(length, device=device)
    image = spans.image.to(device)[:length]
    prompt = pos < spans.prompt_len
    return torch.stack([image, prompt & ~image, pos < spans.pretext_len], dim=1).float()


def reduce_probs(probs: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """probs [H, R, L] -> [3, H, R] masses over the key groups."""
    return torch.einsum("hrl,lg->ghr", probs, groups)


def _reduce_layer(col: _Collector, layer: int, query, key, attention_mask, scaling: float) -> None:
    spans = col.spans
    heads, length = query.shape[1], key.shape[2]
    keys = key[0].float()
    if keys.shape[0] != heads:  # grouped-query attention: each key head serves heads/kv query heads
        keys = keys.repeat_interleave(heads // keys.shape[0], dim=0)
    if col.groups is None:
        col.groups = _key_groups(spans, length, query.device)
    groups = col.groups
    key_pos = torch.arange(length, device=query.device)
    out, rows_out = [], []
    rows = spans.rows
    for start in range(rows.start, rows.stop, col.chunk_rows):
        stop = min(start + col.chunk_rows, rows.stop)
        q = query[0, :, start:stop].float()
        scores = torch.matmul(q, keys.transpose(-1, -2)) * scaling  # [H, c, L]: the only large buffer
        allowed = key_pos[None, :] <= torch.arange(start, stop, device=query.device)[:, None]  # causal
        if attention_mask is not None:
            m = attention_mask[0, 0, start:stop, :length]
            if m.dtype == torch.bool:
                allowed = allowed & m
            else:
                scores = scores + m.float()
        probs = torch.softmax(scores.masked_fill_(~allowed, float("-inf")), dim=-1)
        out.append(reduce_probs(probs, groups))
        if col.keep_rows:
            rows_out.append(probs.mean(0))
        del scores, probs
    masses = torch.cat(out, dim=2)
    col.layers[layer] = LayerMasses(masses[0], masses[1], masses[2], torch.cat(rows_out) if col.keep_rows else None)


def lean_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """SDPA output, plus the response rows' reductions for text decoder layers while collecting."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    output, _ = sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
    col = _ACTIVE.get()
    layer = getattr(module, "layer_idx", None)
    if col is not None and layer is not None and query.shape[2] == len(col.spans.image):
        if query.shape[0] != 1:
            raise ValueError("CMAB reduction runs one sample per forward (batch size 1)")
        with torch.no_grad():
            _reduce_layer(col, layer, query, key, attention_mask, scaling if scaling is not None else query.shape[-1] ** -0.5)
    return output, None


def register() -> str:
    """Make IMPL usable as attn_implementation (idempotent); returns its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(IMPL, lean_attention)
    AttentionMaskInterface.register(IMPL, sdpa_mask)  # same masks as SDPA, which computes the output
    return IMPL


@contextlib.contextmanager
def collect_masses(spans: Spans, chunk_rows: int = 64, keep_rows: bool = False):
    """Inside the block, forwards through a lean-attention model fill the yielded dict {layer: LayerMasses}."""
    col = _Collector(spans, chunk_rows, keep_rows)
    token = _ACTIVE.set(col)
    try:
        yield col.layers
    finally:
        _ACTIVE.reset(token)


def lean_masses(model, inputs: dict, spans: Spans, chunk_rows: int = 64, keep_rows: bool = False) -> dict[int, LayerMasses]:
    """One forward of `model` (loaded or set with attn_implementation IMPL for its text config)."""
    with collect_masses(spans, chunk_rows, keep_rows) as layers, torch.inference_mode():
        _forward_hidden(model, inputs)
    n = model.config.get_text_config().num_hidden_layers
    if sorted(layers) != list(range(n)):
        raise RuntimeError(f"lean attention saw layers {sorted(layers)} of {n}: is the text config's attn_implementation {IMPL!r}?")
    return dict(layers)


def eager_masses(model, inputs: dict, spans: Spans, keep_rows: bool = False) -> dict[int, LayerMasses]:
    """Reference: materialized attention (attn_implementation='eager', output_attentions=True)."""
    with torch.inference_mode():
        out = _forward_hidden(model, inputs, output_attentions=True)
    if out.attentions is None or any(a is None for a in out.attentions):
        raise RuntimeError("no attention weights returned: load the model with attn_implementation='eager'")
    rows = list(spans.rows)
    result = {}
    for layer, attn in enumerate(out.attentions):
        probs = attn[0, :, rows[0] : rows[-1] + 1].float()  # [H, R, L]
        masses = reduce_probs(probs, _key_groups(spans, probs.shape[-1], probs.device))
        result[layer] = LayerMasses(masses[0], masses[1], masses[2], probs.mean(0) if keep_rows else None)
    return result


def _forward_hidden(model, inputs: dict, **kwargs):
    """The decoder stack only: CMAB needs attention, not logits (a 150k-vocab head at 4k tokens is GiBs)."""
    base = getattr(model, "model", model)
    return base(**inputs, use_cache=False, **kwargs)
