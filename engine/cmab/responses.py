"""Where CMAB's verified responses come from: PISM's clean-image pass, before generating anything.

PISM already judged K draws on the unmasked image; its `clean_response` column keeps the first
verified-correct one, and `unsolved` marks samples with none. Reusing them saves the generations
(and verifier calls) the reference spent on its solvability search.
"""
from __future__ import annotations

from pathlib import Path

UNSOLVED = None  # a sample PISM found no correct answer for: CMAB records it unsolved


def responses_from_pism(scores: str | Path) -> dict[str, str | None]:
    """id -> verified response, or None (unsolved). Ids PISM errored on, or scored before
    `clean_response` existed, are left out: the caller generates and verifies for those."""
    import pyarrow.parquet as pq

    table = pq.read_table(scores)
    missing = {"id", "unsolved", "error"} - set(table.column_names)
    if missing:
        raise ValueError(f"{scores} is not a PISM scores file (missing {sorted(missing)})")
    has_text = "clean_response" in table.column_names
    out: dict[str, str | None] = {}
    for row in table.to_pylist():
        if row["error"] is not None:
            continue
        if row["unsolved"]:
            out[str(row["id"])] = UNSOLVED
        elif has_text and row["clean_response"] is not None:
            out[str(row["id"])] = row["clean_response"]
    return out
