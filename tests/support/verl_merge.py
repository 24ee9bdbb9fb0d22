"""Test support: what verl's model merger leaves behind, for tests that stand in for verl's child processes."""
from __future__ import annotations

from pathlib import Path


def write_merged_model(command) -> None:
    """The merged HF folder a `verl.model_merger ... --target_dir DIR` command would write (config only)."""
    target = Path(command[command.index("--target_dir") + 1])
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")
