"""Format adapters: foreign corpora -> Sample (readers), Sample -> trainer files (writers).

One module per format. Readers return (samples, quarantine records) and never raise on a bad
record; writers return the paths they wrote.

    read_records("vtriune", "orsta/", ImagePolicy(roots=("orsta/",)))
    write_records("verl", samples, "out/verl/")      # out/verl/train.parquet, val.parquet...
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from engine.data.images import ImagePolicy
from engine.data.reasons import QuarantineRecord
from engine.data.sample import Sample

from engine.data.formats.curr_reft import read_curr_reft
from engine.data.formats.difficulty_sampling import read_difficulty_sampling
from engine.data.formats.llamafactory import write_llamafactory
from engine.data.formats.swift import read_swift, write_swift
from engine.data.formats.verl import read_verl, write_verl
from engine.data.formats.vtriune import read_vtriune

Reader = Callable[..., tuple[list[Sample], list[QuarantineRecord]]]
Writer = Callable[..., list[Path]]

READERS: dict[str, Reader] = {
    "vtriune": read_vtriune,
    "difficulty_sampling": read_difficulty_sampling,
    "swift": read_swift,
    "curr_reft": read_curr_reft,
    "verl": read_verl,
}
WRITERS: dict[str, Writer] = {
    "verl": write_verl,
    "swift": write_swift,
    "llamafactory": write_llamafactory,
}


def read_records(
    fmt: str, path: str | Path, policy: ImagePolicy | None = None, **opts: Any
) -> tuple[list[Sample], list[QuarantineRecord]]:
    """Read a file or directory in format `fmt`. Common opts: decode (default True: decode every
    image), embed_images (default True), split (for records that name none). With no image roots
    in `policy`, image paths are confined to the input's own directory."""
    return _lookup(READERS, fmt, "input")(path, policy or ImagePolicy(), **opts)


def write_records(fmt: str, samples: Sequence[Sample], out_path: str | Path, **opts: Any) -> list[Path]:
    """Write samples in format `fmt`; `out_path` with the format's suffix is one file, anything
    else a directory with one file per split. Opts: policy (to read path-only images), and the
    writer's own (see each writer)."""
    return _lookup(WRITERS, fmt, "output")(samples, out_path, **opts)


def _lookup(table: dict[str, Callable], fmt: str, kind: str) -> Callable:
    try:
        return table[fmt]
    except KeyError:
        raise KeyError(f"unknown {kind} format {fmt!r}; known: {sorted(table)}") from None


__all__ = ["READERS", "WRITERS", "read_records", "write_records"]
