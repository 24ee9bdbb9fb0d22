"""Make PyPI's (CUDA-built) torchvision importable beside CPU torch, in every process.

PyPI only serves a CUDA build of torchvision; its compiled ops fail to load beside the CPU torch
wheel, and its fake-tensor registrations then die with "operator torchvision::nms does not exist".
qwen-vl-utils, verl's multimodal dataset and vLLM's Qwen2.5-VL path import torchvision but only
use its pure-Python parts. Declaring the two op schemas before torchvision's first import is
enough. A `.pth` file (written by `python -m engine.env.install_hooks`) installs the finder below at
interpreter start-up, so Ray workers and vLLM's engine process get it too; it costs nothing until
something imports torchvision, and does nothing when torchvision's own ops load.
"""
from __future__ import annotations

import importlib.abc
import sys

_LIBRARY = None  # keeps the torch.library registration alive for the process lifetime
_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor",
)


def declare_missing_ops() -> bool:
    """Define torchvision::nms/qnms schemas if no library provides them. True if defined here."""
    global _LIBRARY
    import torch

    try:
        torch._C._dispatch_has_kernel_for_dispatch_key("torchvision::nms", "Meta")
        return False  # the op exists: a working torchvision build, leave it alone
    except RuntimeError:
        pass
    if _LIBRARY is None:
        _LIBRARY = torch.library.Library("torchvision", "DEF")
        for schema in _SCHEMAS:
            _LIBRARY.define(schema)
    return True


class _TorchvisionFinder(importlib.abc.MetaPathFinder):
    """On the first `import torchvision`, declare the ops, then step aside for the real finders."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "torchvision":
            return None
        sys.meta_path.remove(self)
        try:
            declare_missing_ops()
        except Exception as exc:  # never break an import over this shim
            print(f"gradus torchvision shim: could not declare ops: {exc}", file=sys.stderr)
        return None


def install() -> None:
    if "torchvision" in sys.modules or any(isinstance(f, _TorchvisionFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _TorchvisionFinder())
