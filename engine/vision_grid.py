"""The merged-patch grid a Qwen-VL-style engine puts an image on, read from the engine's own image processor.

The processor resizes every image (`smart_resize`: sides multiples of patch_size * merge_size,
area within its min/max pixels) and each merged patch of the result becomes one visual token.
PISM's `patch` masks black out whole cells of that grid, so the grid must come from the processor
the engine runs, with the engine's overrides, never from numbers copied into a config by hand.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

_BOUNDS = ("shortest_edge", "longest_edge")  # the processor's `size`: min and max pixels after resizing


@dataclass(frozen=True)
class VisionGrid:
    cell: int  # merged patch side in resized pixels: patch_size * merge_size (28 for Qwen2.5-VL)
    min_pixels: int
    max_pixels: int

    def resized(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) in pixels of the image the engine's processor makes of this one."""
        # the very function HF's Qwen2-VL processor and vLLM's Qwen2-VL input processing resize with
        # (qwen-vl-utils' copy rounds differently for extreme aspect ratios)
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

        return smart_resize(height, width, factor=self.cell, min_pixels=self.min_pixels, max_pixels=self.max_pixels)

    def shape(self, height: int, width: int) -> tuple[int, int]:
        """(rows, columns) of merged patches the engine sees for an image of this size."""
        rh, rw = self.resized(height, width)
        return rh // self.cell, rw // self.cell

    @classmethod
    def from_processor(cls, image_processor: Any, overrides: Mapping[str, Any] | None = None) -> VisionGrid:
        """The grid of an HF image processor, with `overrides` applied as vLLM applies its
        `mm_processor_kwargs`: `size` first, then `min_pixels` / `max_pixels`."""
        patch, merge, size = (getattr(image_processor, k, None) for k in ("patch_size", "merge_size", "size"))
        bounds = {k: _size_value(size, k) for k in _BOUNDS}
        if not patch or not merge or None in bounds.values():
            raise ValueError(f"{type(image_processor).__name__} has no patch_size, merge_size and size "
                             f"{_BOUNDS}: patch masks need a Qwen-VL-style image processor")
        over = dict(overrides or {})
        bounds.update({k: v for k, v in dict(over.get("size") or {}).items() if k in _BOUNDS and v is not None})
        for key, bound in (("min_pixels", "shortest_edge"), ("max_pixels", "longest_edge")):
            if over.get(key) is not None:
                bounds[bound] = over[key]
        return cls(int(patch) * int(merge), int(bounds["shortest_edge"]), int(bounds["longest_edge"]))

    @classmethod
    def from_model(cls, model_path: str, overrides: Mapping[str, Any] | None = None) -> VisionGrid:
        """The grid of the image processor saved with a model (preprocessor_config.json or
        processor_config.json, loaded by transformers as the engines load it)."""
        from transformers import AutoImageProcessor

        return cls.from_processor(AutoImageProcessor.from_pretrained(model_path, local_files_only=True), overrides)


def _size_value(size: Any, key: str) -> Any:
    """`size` is a dict in saved configs and a SizeDict on loaded transformers processors."""
    if size is None:
        return None
    return size.get(key) if isinstance(size, Mapping) else getattr(size, key, None)
