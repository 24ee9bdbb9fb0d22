"""Masking operators. Every draw has its own seed from (global seed, sample id, ratio, draw)
(engine/generation/seeds.py), so any draw can be reproduced alone, in any order, on any worker."""
from __future__ import annotations

import math

import numpy as np
from PIL import Image

from engine.vision_grid import VisionGrid

MODES = ("rect", "pixel", "patch")


def _rect(arr: np.ndarray, ratio: float, rng: np.random.Generator) -> None:
    # Reference code: one black rectangle with sides W*sqrt(r), H*sqrt(r), corner uniform.
    h, w = arr.shape[:2]
    rw, rh = round(w * math.sqrt(ratio)), round(h * math.sqrt(ratio))
    x0 = int(rng.integers(0, w - rw + 1))
    y0 = int(rng.integers(0, h - rh + 1))
    arr[y0 : y0 + rh, x0 : x0 + rw] = 0


def _pixel(arr: np.ndarray, ratio: float, rng: np.random.Generator) -> None:
    # Paper text: a random r fraction of pixels set to black.
    h, w = arr.shape[:2]
    idx = rng.choice(h * w, size=round(ratio * h * w), replace=False)
    arr.reshape(h * w, -1)[idx] = 0


def _patch(arr: np.ndarray, ratio: float, rng: np.random.Generator, grid: VisionGrid) -> None:
    # A random r fraction of the vision encoder's merged patches, on the grid of the image as the
    # engine's processor resizes it, mapped back to this image's pixels.
    h, w = arr.shape[:2]
    gy, gx = grid.shape(h, w)
    cells = rng.choice(gy * gx, size=round(ratio * gy * gx), replace=False)
    ys = np.linspace(0, h, gy + 1).round().astype(int)
    xs = np.linspace(0, w, gx + 1).round().astype(int)
    for c in cells:
        i, j = divmod(int(c), gx)
        arr[ys[i] : ys[i + 1], xs[j] : xs[j + 1]] = 0


def mask_image(image: Image.Image, ratio: float, mode: str, seed: int, *, grid: VisionGrid | None = None) -> Image.Image:
    """A masked copy of `image` (RGB); ratio 0 returns an unmasked copy. `patch` needs the engine's `grid`."""
    if mode not in MODES:
        raise ValueError(f"mask mode {mode!r} not one of {MODES}")
    if mode == "patch" and grid is None:
        raise ValueError("patch masks need the engine's VisionGrid (GenerationBackend.vision_grid())")
    arr = np.array(image.convert("RGB"))
    if ratio > 0:
        rng = np.random.default_rng(seed)
        if mode == "rect":
            _rect(arr, ratio, rng)
        elif mode == "pixel":
            _pixel(arr, ratio, rng)
        else:
            _patch(arr, ratio, rng, grid)
    return Image.fromarray(arr)
