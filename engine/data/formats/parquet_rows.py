"""Row iteration over foreign parquet files: a file that cannot be read is one quarantine record."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from engine.data.reasons import Reason, SampleError


def iter_parquet_rows(path: str | Path) -> Iterator[tuple[str, dict | SampleError, object]]:
    paths = sorted(Path(path).rglob("*.parquet")) if Path(path).is_dir() else [Path(path)]
    for p in paths:
        try:
            pf = pq.ParquetFile(p)
        except (pa.ArrowInvalid, OSError) as exc:
            yield str(p), SampleError(Reason.BAD_FIELD_TYPE, f"unreadable parquet: {exc}"), None
            continue
        row_index = 0
        for batch in pf.iter_batches(batch_size=256):
            for row in batch.to_pylist():
                yield f"{p}:row {row_index}", row, row
                row_index += 1
