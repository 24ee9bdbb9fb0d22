"""Stage data inside a curriculum: `reformulate:` references made once per curriculum.

A stage's data may be `reformulate:<stage>:<source>` (rl/sources.py): the curriculum produces it
under `<output_dir>/data/` with the curriculum's seed before the stage's recipe sees the config,
so the judge, choice and open stages of one source share one reformulation run. Every other
reference is left to the stage's recipe, which resolves `warmstart:` and `?tasks=` itself.
"""
from __future__ import annotations

from pathlib import Path

from rl.sources import REFORMULATE, resolve_data


def resolve_stage_data(spec: str, out_dir: Path, seed: int) -> str:
    """A stage's data spec with a `reformulate:` reference produced and replaced by its shard folder;
    anything else is returned unchanged."""
    if not spec.startswith(REFORMULATE):
        return spec
    return str(resolve_data(spec, out_dir / "data", "selected", seed=seed))
