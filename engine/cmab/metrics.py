"""rho-bar from per-layer attention masses: the paper's definition and the reference script's."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from engine.cmab.attention import LayerMasses, Spans
from engine.cmab.config import CmabConfig


@dataclass
class Rho:
    rho_bar: float
    per_token: list[float]  # rho_t (paper) or the per-token img/txt density ratio (code)
    layer_profile: list[float]  # per layer: mean over response tokens of S_img / S_txt (head-averaged)


def paper_rho(masses: dict[int, LayerMasses], cfg: CmabConfig) -> Rho:
    """rho(l,t) = S_img/S_txt (head means); rho_t = geometric mean over layers; rho-bar = mean over t."""
    layers = sorted(masses)
    ratio = torch.stack([masses[l].image.mean(0) / masses[l].text.mean(0) for l in layers])  # [L, R]
    used = ratio[1:-1] if cfg.skip_first_last and len(layers) > 2 else ratio
    rho_t = torch.exp(torch.log(used + cfg.eps).mean(0))
    return Rho(float(rho_t.mean()), rho_t.tolist(), ratio.mean(1).tolist())


def code_rho(masses: dict[int, LayerMasses], spans: Spans, cfg: CmabConfig) -> Rho:
    """One layer; per-token mean attention per image token and per pre-image text token; ratio of sums."""
    layers = sorted(masses)
    n_img, n_pre = int(spans.image.sum()), spans.pretext_len
    if n_img == 0 or n_pre == 0:
        raise ValueError(f"code mode needs image tokens and text before them (image {n_img}, pre-image text {n_pre})")
    m = masses[layers[cfg.layer_index(len(layers))]]
    img_t, txt_t = m.image.mean(0) / n_img, m.pretext.mean(0) / n_pre
    profile = [float((masses[l].image.mean(0) / n_img).sum() / (masses[l].pretext.mean(0) / n_pre).sum()) for l in layers]
    return Rho(float(img_t.sum() / txt_t.sum()), (img_t / txt_t).tolist(), profile)


def rho(masses: dict[int, LayerMasses], spans: Spans, cfg: CmabConfig) -> Rho:
    out = paper_rho(masses, cfg) if cfg.mode == "paper" else code_rho(masses, spans, cfg)
    if not math.isfinite(out.rho_bar):
        raise ValueError(f"rho-bar is not finite ({out.rho_bar})")
    return out


def heatmap_rows(masses: dict[int, LayerMasses], cfg: CmabConfig) -> torch.Tensor:
    """[R, L] attention of each response token over input positions, averaged over heads and over
    the layers the metric reads (paper: 2..L-1; code: its one layer). Needs keep_rows=True."""
    layers = sorted(masses)
    if cfg.mode == "code":
        used = [layers[cfg.layer_index(len(layers))]]
    else:
        used = layers[1:-1] if cfg.skip_first_last and len(layers) > 2 else layers
    if any(masses[l].rows is None for l in used):
        raise ValueError("attention rows were not kept (collect with keep_rows=True)")
    return torch.stack([masses[l].rows for l in used]).mean(0)
