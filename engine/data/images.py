"""Guarded image access: path confinement under configured roots and defensive decoding.

Every image gradus touches goes through `load_image`, so pixel budgets, decompression bombs,
truncated files and path escapes are handled once, with reason codes, everywhere.
"""
from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageFile, UnidentifiedImageError

from engine.config import ConfigError
from engine.data.reasons import Reason, SampleError
from engine.errors import error_detail

# Never let PIL silently pad a truncated file with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False

# Pixels per encoded byte above which an over-budget image is labelled a bomb, not just large.
BOMB_PIXELS_PER_BYTE = 1000


@dataclass(frozen=True)
class ImagePolicy:
    """Limits applied to every decoded image, and where image paths may be read from. Conversion
    takes it from `--image-root`; every scoring job from its `images` config section."""

    max_pixels: int = 4096 * 4096  # width*height accepted for decoding
    max_bytes: int = 64 * 1024 * 1024  # encoded size accepted
    roots: tuple[str, ...] = field(default_factory=tuple)  # directories image paths may resolve under (relative paths: tried in order); none: a path-only image is not read

    def validate(self) -> None:
        if self.max_pixels < 1 or self.max_bytes < 1:
            raise ConfigError(f"images: need max_pixels >= 1 and max_bytes >= 1, got {self.max_pixels}, {self.max_bytes}")
        if any(not str(r).strip() for r in self.roots):
            raise ConfigError(f"images.roots: an empty root would mean the working directory; got {list(self.roots)}")

    def with_roots(self, roots: Sequence[str | os.PathLike]) -> "ImagePolicy":
        return ImagePolicy(self.max_pixels, self.max_bytes, tuple(str(r) for r in roots))

    def absolute(self) -> "ImagePolicy":
        """Roots made absolute where the job starts: Ray workers run in other directories."""
        return self.with_roots([os.path.abspath(os.path.expanduser(r)) for r in self.roots])


def resolve_image_path(path: str, roots: Sequence[str]) -> Path:
    """Resolve `path` under one of `roots`; refuse anything that ends up outside them.

    Relative paths are tried against each root in order; absolute paths must already lie under
    a root. Symlinks are resolved before the check, so a link cannot smuggle a path out.
    """
    if not roots:
        raise SampleError(Reason.IMAGE_PATH_ESCAPE, f"no image roots configured for path {path!r}: nothing is read outside "
                          "configured roots (jobs: images.roots; gradus data convert: --image-root)")
    if "\x00" in path:
        raise SampleError(Reason.IMAGE_PATH_ESCAPE, "NUL byte in image path")
    resolved_roots = [Path(r).resolve() for r in roots]
    candidate_paths = [Path(path)] if os.path.isabs(path) else [root / path for root in resolved_roots]
    inside_any = False
    for candidate in candidate_paths:
        try:
            real = candidate.resolve()
            if not any(real == root or root in real.parents for root in resolved_roots):
                continue
            inside_any = True
            if real.is_file():
                return real
        except (OSError, RuntimeError) as exc:  # name too long, symlink loop: unusable, not a crash
            raise SampleError(Reason.IMAGE_MISSING, f"{path[:200]!r} cannot be resolved: {exc}"[:400]) from exc
    if not inside_any:
        raise SampleError(Reason.IMAGE_PATH_ESCAPE, f"{path!r} resolves outside the image roots")
    raise SampleError(Reason.IMAGE_MISSING, f"{path!r} not found under {list(roots)}")


def read_image_bytes(data: bytes | None, path: str | None, policy: ImagePolicy) -> bytes:
    """The encoded bytes of an image reference: inline bytes win, else the confined path."""
    if data:
        if len(data) > policy.max_bytes:
            raise SampleError(Reason.IMAGE_TOO_LARGE, f"{len(data)} encoded bytes > {policy.max_bytes}")
        return bytes(data)
    if not path:
        raise SampleError(Reason.IMAGE_NO_SOURCE, "image has neither bytes nor path")
    real = resolve_image_path(path, policy.roots)
    try:
        size = real.stat().st_size
        if size > policy.max_bytes:
            raise SampleError(Reason.IMAGE_TOO_LARGE, f"{size} encoded bytes > {policy.max_bytes}")
        return real.read_bytes()
    except OSError as exc:  # e.g. permission denied: this record is unusable, the run goes on
        raise SampleError(Reason.IMAGE_MISSING, f"{path!r} unreadable: {exc}") from exc


def decode_image(data: bytes, policy: ImagePolicy) -> Image.Image:
    """Decode to RGB, checking the header's size before any pixel is decompressed."""
    try:
        with warnings.catch_warnings():
            # PIL warns (not raises) between 1x and 2x its own bomb limit: make that an error too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width <= 0 or height <= 0:
                raise SampleError(Reason.IMAGE_CORRUPT, f"degenerate size {width}x{height}")
            if width * height > policy.max_pixels:
                # A small file claiming a huge canvas is the decompression-bomb signature.
                bomb = width * height > BOMB_PIXELS_PER_BYTE * len(data)
                reason = Reason.IMAGE_DECOMPRESSION_BOMB if bomb else Reason.IMAGE_TOO_LARGE
                raise SampleError(reason, f"{width}x{height} > budget of {policy.max_pixels} pixels")
            img.load()
            return img.convert("RGB")
    except SampleError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise SampleError(Reason.IMAGE_DECOMPRESSION_BOMB, str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise SampleError(Reason.IMAGE_CORRUPT, "not a recognised image format") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        msg = str(exc)
        reason = Reason.IMAGE_TRUNCATED if "truncated" in msg.lower() or "broken data stream" in msg.lower() else Reason.IMAGE_CORRUPT
        raise SampleError(reason, msg) from exc
    except Exception as exc:  # noqa: BLE001 - PIL's format plugins raise arbitrary errors on malformed files
        # (a TIFF whose StripOffsets tag is typed ASCII raises TypeError from load()); still just a corrupt image.
        raise SampleError(Reason.IMAGE_CORRUPT, error_detail(exc, limit=None)) from exc


def load_image(data: bytes | None, path: str | None, policy: ImagePolicy) -> Image.Image:
    """Bytes-or-path image reference -> RGB PIL image, or SampleError with a reason code."""
    return decode_image(read_image_bytes(data, path, policy), policy)


def encode_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
