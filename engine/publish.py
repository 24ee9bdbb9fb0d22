"""Atomic publishing: an output is written under a temporary sibling name and renamed into place,
so a reader (or a rerun after a kill) sees the previous output or the finished one, never half of one.

`publish_file` / `publish_text` for one file, `publish_dir` for a folder. The temporary name is
`<name>.partial` unless a site needs its own (a unique name where two writers may run at once);
a failed write removes its partial, and one left by a killed write is removed before the next
write of the same output.
"""
from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

PARTIAL = ".partial"


def partial_path(final: str | Path) -> Path:
    """Where `final` is written before it is published."""
    final = Path(final)
    return final.with_name(final.name + PARTIAL)


def remove_partials(folder: str | Path, pattern: str = "*" + PARTIAL) -> None:
    """Remove partial files a killed write left in `folder` (they are never read)."""
    for stale in Path(folder).glob(pattern):
        stale.unlink()


def publish_file(final: str | Path, write: Callable[[Path], object], *, partial: str | Path | None = None) -> Path:
    """Call `write(tmp)`, then rename tmp onto `final` (replacing it); returns `final`."""
    final = Path(final)
    tmp = Path(partial) if partial is not None else partial_path(final)
    try:
        write(tmp)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


def publish_text(final: str | Path, text: str) -> Path:
    return publish_file(final, lambda tmp: tmp.write_text(text))


@contextmanager
def publish_dir(final: str | Path, *, partial: str | Path | None = None) -> Iterator[Path]:
    """`with publish_dir(out) as tmp:` write the folder's content under `tmp` (which does not exist
    yet: the body creates it); on leaving the block `tmp` replaces `out` whole. On an error nothing
    is published, `out` is left as it was and `tmp` is removed."""
    final = Path(final)
    tmp = Path(partial) if partial is not None else partial_path(final)
    shutil.rmtree(tmp, ignore_errors=True)  # left by a killed earlier write
    try:
        yield tmp
        swap_dir(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # after an error; gone already after a publish


def swap_dir(tmp: Path, final: Path) -> None:
    """Put the finished folder `tmp` in place of `final`: the old one is moved aside first, so the
    path holds either the old folder or the new one, and the old one is removed after."""
    if not final.exists():
        tmp.rename(final)
        return
    old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
    final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
