"""Where gradus's own files are: the repository root, its configs, and the cache of built artifacts."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "configs"
DEFAULT_CACHE = "~/.cache/gradus"


def repo_path(path: str | Path) -> Path:
    """An existing path as given (cwd-relative), else relative to the repo root; absolute, user-expanded."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p.resolve()
    return (REPO_ROOT / p).resolve()


def cache_root(cfg_dir: str = "") -> Path:
    """The cache of built artifacts (corpora, warm-started models): a config's own `cache_dir`, else
    $GRADUS_CACHE, else ~/.cache/gradus."""
    root = cfg_dir or os.environ.get("GRADUS_CACHE") or DEFAULT_CACHE
    return Path(root).expanduser().resolve()
