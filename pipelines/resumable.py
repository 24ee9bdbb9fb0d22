"""Resumable per-sample outputs shared by the scoring pipelines (PISM, CMAB).

The driver streams result blocks (iter_batches) into parts/, one parquet file per block, each
written to a temp name and renamed, so a part is either whole or absent. A rerun of the same
command reads the ids in parts/ and scores only the rest. We do this instead of Ray Data's
CheckpointConfig because there the output file and the checkpoint record are separate writes (a
kill between them re-scores and duplicates rows) and, on small inputs here, output blocks were
only written at the end of the run. `finish` keeps one row per id and writes `scores.parquet`
sorted by id, so the result equals an uninterrupted run (scoring is seeded). Rows whose error is
a data reason code go to `quarantine.parquet`; engine failures stay in scores as error rows.
"""
from __future__ import annotations

import json
import uuid
from pathlib import Path

from tqdm import tqdm

from engine.config import ConfigError
from engine.data.reasons import Reason

DATA_REASONS = {r.value for r in Reason}


class ResumableOutput:
    """One output directory: job stamp, parts/, then scores.parquet + quarantine.parquet."""

    def __init__(self, out: str | Path, job: dict):
        self.out = Path(out)
        self.parts = self.out / "parts"
        self.parts.mkdir(parents=True, exist_ok=True)
        stamp = self.out / "job.json"
        if stamp.exists() and json.loads(stamp.read_text()) != job:
            raise ConfigError(f"{self.out} holds a run with another config or input; use a new output directory")
        stamp.write_text(json.dumps(job))
        for stale in self.parts.glob(".*.tmp"):  # a write cut short by a kill
            stale.unlink()

    def done_ids(self) -> set[str]:
        import pyarrow.parquet as pq

        done: set[str] = set()
        for f in self.parts.glob("*.parquet"):
            done.update(pq.read_table(f, columns=["id"]).column("id").to_pylist())
        return done

    def write_part(self, frame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        tmp = self.parts / f".{uuid.uuid4().hex}.tmp"
        # No pandas metadata: Ray hands over Arrow-backed list dtypes that pandas cannot read back from it.
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None), tmp)
        tmp.rename(self.parts / f"part-{uuid.uuid4().hex}.parquet")  # atomic: a part is whole or absent

    def stream(self, scored, total: int, desc: str) -> None:
        """Persist every result block of the Ray dataset `scored` as it arrives, with a progress bar."""
        with tqdm(total=total, desc=desc, unit="sample") as bar:
            for frame in scored.iter_batches(batch_format="pandas", batch_size=None):
                self.write_part(frame)
                bar.update(len(frame))

    def finish(self, columns: list[str], drop: tuple[str, ...] = ()):
        """Consolidate parts (one row per id, sorted) into scores.parquet and quarantine.parquet,
        leaving `drop` columns out of both files. Returns (all rows, bad-data mask)."""
        import pandas as pd
        import pyarrow.parquet as pq

        frames = [pq.read_table(f).to_pandas() for f in sorted(self.parts.glob("*.parquet"))]
        if frames:
            frame = pd.concat(frames, ignore_index=True)
            frame = frame.drop_duplicates("id", keep="first").sort_values("id").reset_index(drop=True)
        else:
            frame = pd.DataFrame(columns=columns)
        bad = frame["error"].isin(DATA_REASONS)
        frame[~bad].drop(columns=list(drop)).to_parquet(self.out / "scores.parquet", index=False)
        frame[bad].drop(columns=list(drop)).to_parquet(self.out / "quarantine.parquet", index=False)
        return frame, bad


def pending(ds, done: set[str]):
    """`ds` without the rows whose ids are already in `done` (a resumed run)."""
    if not done:
        return ds
    import ray

    done_ref = ray.put(done)
    return ds.map_batches(lambda b: b[~b["id"].astype(str).isin(ray.get(done_ref))], batch_format="pandas")


def problem_rows(summary: dict) -> list[dict]:
    """Quarantined and errored counts as report rows."""
    rows = [{"reason": r, "rows": n, "where": "quarantine.parquet"} for r, n in summary["quarantined"].items()]
    return rows + [{"reason": r, "rows": n, "where": "scores.parquet (error rows)"} for r, n in summary["errors"].items()]
