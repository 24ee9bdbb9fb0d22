"""Resumable per-sample outputs shared by the scoring pipelines (PISM, CMAB, eval, rejection sampling).

The driver (pipelines/driver.py) streams result blocks into parts/, one parquet file per block, each
written to a temp name and renamed, so a part is either whole or absent. A rerun of the same
command reads the ids in parts/ and scores only the rest. We do this instead of Ray Data's
CheckpointConfig because there the output file and the checkpoint record are separate writes (a
kill between them re-scores and duplicates rows) and, on small inputs here, output blocks were
only written at the end of the run. `finish` keeps one row per id and writes `scores.parquet`
sorted by id, so the result equals an uninterrupted run (scoring is seeded). Rows whose error is
a data reason code go to `quarantine.parquet`; engine failures stay in scores as error rows.

Every part, and both final files, are written with the pipeline's one fixed Arrow schema: a block
of only quarantined rows (all-null columns, which pandas and Ray would type as double or null)
writes the same types as any other, so two uninterrupted runs and a resumed run give the same bytes.
"""
from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Iterable, Sequence

import pyarrow as pa
from tqdm import tqdm

from engine.config import ConfigError, to_dict
from engine.data.images import ImagePolicy
from engine.data.reasons import Reason
from engine.publish import publish_file, remove_partials

DATA_REASONS = {r.value for r in Reason}
# Columns every pipeline adds to each row (the actors' `provenance`).
PROVENANCE_SCHEMA = pa.schema([("model_id", pa.string()), ("config_hash", pa.string()), ("seed", pa.int64()),
                               ("gradus_version", pa.string())])


def output_schema(columns: Sequence[str], **types: pa.DataType) -> pa.Schema:
    """`columns` in order, then the provenance columns; a column not named in `types` holds text.
    Writing refuses a value of another type (a float into a text column is an error, not "0.5")."""
    unknown = set(types) - set(columns)
    if unknown:
        raise ValueError(f"types for columns that are not output columns: {sorted(unknown)}")
    return pa.schema([(c, types.get(c, pa.string())) for c in columns] + list(PROVENANCE_SCHEMA))


def typed_table(frame, schema: pa.Schema) -> pa.Table:
    """A result frame (as an actor returns it, or as Ray hands it back) as a table of exactly `schema`."""
    missing = [c for c in schema.names if c not in frame.columns]
    extra = [c for c in frame.columns if c not in schema.names]
    if missing or extra:
        raise ValueError(f"result columns differ from the output schema: missing {missing}, unexpected {extra}")
    # No pandas metadata: Ray hands over Arrow-backed list dtypes that pandas cannot read back from it.
    return pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False).replace_schema_metadata(None)


def job_stamp(config_hash: str, input_path: str, images: ImagePolicy) -> dict:
    """What an output directory was made from: rows scored under other settings, another input or
    other image roots and limits (rows that were quarantined for want of a root) are not resumed."""
    images_json = json.loads(json.dumps(to_dict(images)))  # roots as a list: equal to the stamp read back from job.json
    return {"config_hash": config_hash, "input": input_path, "images": images_json}


class ResumableOutput:
    """One output directory: job stamp, parts/, then scores.parquet + quarantine.parquet, all of `schema`."""

    def __init__(self, out: str | Path, job: dict, schema: pa.Schema):
        self.out = Path(out)
        self.schema = schema
        self.parts = self.out / "parts"
        self.parts.mkdir(parents=True, exist_ok=True)
        stamp = self.out / "job.json"
        if stamp.exists() and json.loads(stamp.read_text()) != job:
            raise ConfigError(f"{self.out} holds a run with another config, input or image policy; use a new output directory")
        stamp.write_text(json.dumps(job))
        remove_partials(self.parts)  # a write cut short by a kill

    def done_ids(self) -> set[str]:
        import pyarrow.parquet as pq

        done: set[str] = set()
        for f in self.parts.glob("*.parquet"):
            done.update(pq.read_table(f, columns=["id"]).column("id").to_pylist())
        return done

    def write_part(self, frame) -> None:
        import pyarrow.parquet as pq

        # atomic: a part is whole or absent
        publish_file(self.parts / f"part-{uuid.uuid4().hex}.parquet", lambda tmp: pq.write_table(typed_table(frame, self.schema), tmp))

    def stream(self, frames: Iterable, total: int, desc: str) -> None:
        """Persist every result frame (a stage's output blocks, pipelines/driver.py) as it arrives, with a progress bar."""
        with tqdm(total=total, desc=desc, unit="sample") as bar:
            for frame in frames:
                if len(frame):  # an empty input yields an empty block, without the result columns
                    self.write_part(frame)
                bar.update(len(frame))

    def finish(self, drop: tuple[str, ...] = (), quarantined: Sequence[dict] = ()):
        """Consolidate parts (one row per id, sorted) into scores.parquet and quarantine.parquet,
        leaving `drop` columns out of both files. `quarantined`: rows decided before scoring (the
        input's duplicate copies, `ShardIndex.duplicates`), added to quarantine.parquet after the
        parts' rows of the same id. Returns (all rows as pandas, bad-data mask)."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        parts = [pq.read_table(f, schema=self.schema) for f in sorted(self.parts.glob("*.parquet"))]
        table = _one_row_per_id(pa.concat_tables([self.schema.empty_table(), *parts]))
        table = pa.concat_tables([table, pa.Table.from_pylist(list(quarantined), schema=self.schema)])
        table = table.sort_by("id")  # stable: a part's row before the duplicate copies of its id
        bad = pc.is_in(table.column("error"), value_set=pa.array(sorted(DATA_REASONS))).fill_null(False)
        kept = table.drop_columns(list(drop))
        for rows, name in ((kept.filter(pc.invert(bad)), "scores.parquet"), (kept.filter(bad), "quarantine.parquet")):
            pq.write_table(rows.combine_chunks(), self.out / name)  # one layout whatever the parts were
        return table.to_pandas(), bad.to_pandas()


def _one_row_per_id(table: pa.Table) -> pa.Table:
    """The first row of each id (parts in name order); ids are unique unless a block was written twice."""
    seen: set[str] = set()
    keep = []
    for rid in table.column("id").to_pylist():
        keep.append(rid not in seen)
        seen.add(rid)
    return table.filter(pa.array(keep, pa.bool_()))


def problem_rows(summary: dict) -> list[dict]:
    """Quarantined and errored counts as report rows."""
    rows = [{"reason": r, "rows": n, "where": "quarantine.parquet"} for r, n in summary["quarantined"].items()]
    return rows + [{"reason": r, "rows": n, "where": "scores.parquet (error rows)"} for r, n in summary["errors"].items()]
