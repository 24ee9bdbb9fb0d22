"""What "the same result" means for the shaping data plane: store rows, selected ids and rows, exported rows.

Each output is reduced to a digest per row keyed by id (image bytes included, order of files and
rows ignored, the output folder's own path taken out of exported image paths), so a result made by
one implementation can be compared with one recorded from another. Imports nothing of gradus:
data/demo/make_golden.py loads this file to record the reference from an older tree.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq


def digest(row: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(row, sort_keys=True, default=_plain).encode()).hexdigest()[:20]


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return hashlib.sha256(value).hexdigest()
    return str(value)


def store_rows(store: Path) -> dict[str, str]:
    """id -> digest of the store row, partition columns read back from the hive directories."""
    manifest = json.loads((store / "manifest.json").read_text())
    partitioning = ds.partitioning(pa.schema([(n, pa.string()) for n in manifest["partition_by"]]), flavor="hive")
    table = ds.dataset(store / "data", format="parquet", partitioning=partitioning).to_table(columns=manifest["columns"])
    return {row["id"]: digest(row) for row in table.to_pylist()}


def store_summary(store: Path) -> dict[str, Any]:
    """What the manifest says about the join (not paths or hashes of the code that ran it)."""
    manifest = json.loads((store / "manifest.json").read_text())
    sources = {ns: {k: s[k] for k in ("status", "strata", "unmatched", "provenance", "score_rows")} for ns, s in manifest["sources"].items()}
    directories = sorted(str(p.parent.relative_to(store / "data")) for p in (store / "data").rglob("*.parquet"))
    unmatched = sorted((r["namespace"], r["id"], r["reason"]) for r in pq.read_table(store / "unmatched.parquet").to_pylist())
    return {"rows": manifest["rows"], "columns": manifest["columns"], "partition_by": manifest["partition_by"], "sources": sources,
            "partitions": sorted(set(directories)), "unmatched": [list(u) for u in unmatched]}


def selection_rows(select_dir: Path) -> dict[str, dict[str, str]]:
    """selection -> id -> digest of the written canonical row (difficulty tags in meta)."""
    out = {}
    for folder in sorted((select_dir / "selections").iterdir()):
        rows = [r for f in sorted(folder.glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
        out[folder.name] = {r["id"]: digest(r) for r in rows}
    return out


def selection_record(select_dir: Path) -> dict[str, Any]:
    record = json.loads((select_dir / "selection.json").read_text())
    return {k: record[k] for k in ("universe", "selections", "arms", "seed", "metric", "splits")}


def export_rows(out: Path) -> dict[str, str]:
    """id -> digest of the exported record: verl parquet rows, or swift / LLaMA-Factory JSONL rows
    with image paths replaced by the digest of the image file they name."""
    rows = {}
    for f in sorted(out.rglob("*.parquet")):
        for r in pq.read_table(f).to_pylist():
            rows[r["extra_info"]["id"]] = digest(r | {"extra_info": {k: v for k, v in r["extra_info"].items() if k != "index"}})
    for f in sorted(out.rglob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            images = [hashlib.sha256((f.parent / p).read_bytes()).hexdigest() for p in r["images"]]
            rows[r["id"]] = digest(r | {"images": images, "file": f.stem.split("-")[0]})
    return rows
