"""Format adapters: foreign corpora -> canonical samples (+ quarantine), and canonical -> trainer files."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from engine.data.formats import curr_reft, difficulty_sampling, llamafactory, swift, verl, vtriune
from engine.data.images import ImagePolicy, read_image_bytes
from engine.data.reasons import QuarantineRecord
from engine.data.sample import ImageRef, Sample
from engine.data.shards import validate_all

READERS = {
    "vtriune": vtriune.read,
    "difficulty_sampling": difficulty_sampling.read,
    "swift": swift.read,
    "curr_reft": curr_reft.read,
    "verl": verl.read,
}
WRITERS = {"verl": verl.write, "swift": swift.write, "llamafactory": llamafactory.write}


def read_records(fmt: str, path: str | Path, policy: ImagePolicy, *, decode: bool = True, embed_images: bool = True, **opts) -> tuple[list[Sample], list[QuarantineRecord]]:
    """Read a foreign file; every record ends up either a valid Sample or a QuarantineRecord.

    With `embed_images`, image bytes are copied into the samples so canonical shards are
    self-contained (Ray workers on other nodes cannot see this machine's paths).
    """
    if fmt not in READERS:
        raise KeyError(f"unknown input format {fmt!r}; known: {sorted(READERS)}")
    good, bad = validate_all(READERS[fmt](path, **opts), policy, decode=decode)
    if embed_images:
        for s in good:
            s.images = [r if r.bytes else ImageRef(read_image_bytes(None, r.path, policy), r.path) for r in s.images]
    return good, bad


def write_records(fmt: str, samples: Sequence[Sample], out_path: str | Path, policy: ImagePolicy | None = None, **opts) -> list[Path]:
    if fmt not in WRITERS:
        raise KeyError(f"unknown output format {fmt!r}; known: {sorted(WRITERS)}")
    return WRITERS[fmt](samples, out_path, policy=policy, **opts)


__all__ = ["READERS", "WRITERS", "read_records", "write_records"]
