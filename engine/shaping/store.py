"""Difficulty store: canonical samples with every scoring run's columns joined on by sample id.

Layout (docs/shaping.md): `manifest.json`, `unmatched.parquet` (score ids that match no sample)
and `data/` as hive-partitioned parquet (`data/domain=chart/pism.stratum=mid/part-....parquet`),
so one bucket or one domain is read without opening the rest.

A scoring run's columns live under its namespace, `<metric>` or `<metric>@<tag>` (`pism`,
`pism@7b`, `cmab`, `pass_rate@sft`), as `<namespace>.<column>`: a second model's scores sit
beside the first's. Every namespace carries its run's provenance per row and in the manifest;
writing a namespace that exists with other provenance is refused unless asked to replace it.
"""
from __future__ import annotations

import functools
import hashlib
import json
import re
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from engine import __version__
from engine.config import ConfigError, config_hash
from engine.data.sample import SAMPLE_SCHEMA
from engine.data.shards import shard_paths
from engine.data.stream import IdIndex, Shared, block_tag, run_blocks, take_rows
from engine.publish import publish_dir

STORE_FORMAT = "gradus-difficulty-store/1"
MANIFEST = "manifest.json"
DATA_DIR = "data"
UNMATCHED = "unmatched.parquet"
UNMATCHED_SCHEMA = pa.schema([("namespace", pa.string()), ("id", pa.string()), ("reason", pa.string())])

PROVENANCE = ("model_id", "config_hash", "seed", "gradus_version")
# Per-namespace columns every metric has: where the row stands, why it errored, who scored it.
COMMON_COLUMNS = (("stratum", pa.string()), ("error", pa.string()), ("error_detail", pa.string()), ("model_id", pa.string()),
                  ("config_hash", pa.string()), ("seed", pa.int64()), ("gradus_version", pa.string()))
DEFAULT_PARTITIONS = ("domain",)
# Columns a store may be partitioned by (low cardinality): these canonical ones, and `<ns>.stratum` / `<ns>.bucket`.
PARTITIONABLE_SAMPLE_COLUMNS = ("domain", "split", "task", "source", "verifier")
PARTITIONABLE_METRIC_COLUMNS = ("stratum", "bucket")
LOCAL_BELOW_ROWS = 20000  # smaller stores are built in-process: a Ray Data job's start-up would cost more than the join
_TAG = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class MetricSpec:
    """What a metric's scores file holds and which of its columns the store keeps."""

    name: str
    values: tuple[tuple[str, pa.DataType], ...]  # kept from the scores file (null on error rows)
    required: tuple[str, ...]  # columns a scores file must have (besides id)
    score: str  # the number a range selects on by default and the difficulty tag's "score"
    buckets: tuple[str, ...] = ()  # () = no buckets and no unsolved flag (pass rates)

    def columns(self) -> tuple[tuple[str, pa.DataType], ...]:
        return self.values + COMMON_COLUMNS

    def numeric(self) -> tuple[str, ...]:
        return tuple(name for name, t in self.values if pa.types.is_floating(t) or pa.types.is_integer(t))


METRICS = {
    "pism": MetricSpec("pism", (("lambda_star", pa.float64()), ("bucket", pa.string()), ("unsolved", pa.bool_()), ("generations", pa.int64())),
                       ("lambda_star", "bucket", "unsolved", "error"), "lambda_star", ("easy", "mid", "hard")),
    "cmab": MetricSpec("cmab", (("rho_bar", pa.float64()), ("bucket", pa.string()), ("unsolved", pa.bool_()), ("mode", pa.string()),
                                ("response_source", pa.string())),
                       ("rho_bar", "bucket", "unsolved", "error"), "rho_bar", ("easy", "mid", "hard")),
    "pass_rate": MetricSpec("pass_rate", (("pass_rate", pa.float64()), ("n", pa.int64())), (), "pass_rate"),
}


@dataclass
class ScoreSource:
    """One scoring run to join (config: sources.<namespace>.*)."""

    path: str = ""  # a scores.parquet, a scoring job's output dir (scores + quarantine), or parquet files with id + pass_rate/passed
    model_id: str = ""  # provenance for files that carry none (foreign pass rates); must agree with the file where it has one
    config_hash: str = ""  # as model_id; a file without one gets the hash of its bytes
    seed: int | None = None  # as model_id


def parse_namespace(ns: str) -> tuple[str, str]:
    """`pism` -> (pism, ""), `pism@7b` -> (pism, 7b); anything else is a ConfigError naming the metrics."""
    metric, _, tag = ns.partition("@")
    if metric not in METRICS or ("@" in ns and not _TAG.match(tag)):
        raise ConfigError(f"namespace {ns!r} is not <metric> or <metric>@<tag> with metric in {sorted(METRICS)} "
                          f"and tag of letters, digits, '_' or '-'")
    return metric, tag


def metric_of(ns: str) -> MetricSpec:
    return METRICS[parse_namespace(ns)[0]]


def column(ns: str, name: str) -> str:
    return f"{ns}.{name}"


# ----- reading one scoring run -----

@dataclass
class LoadedScores:
    """One namespace's rows (id + the metric's columns, unqualified, one row per id, sorted by id)
    and the run's provenance."""

    namespace: str
    table: pa.Table
    provenance: dict[str, Any]
    files: list[str]

    @property
    def rows(self) -> dict[str, dict[str, Any]]:
        """The rows by id, as dicts (small runs, inspection)."""
        return {row.pop("id"): row for row in self.table.to_pylist()}

    def entry(self, store_hash: str) -> dict[str, Any]:
        """The manifest's record of this run (joined_by: the store build that joined it)."""
        metric, tag = parse_namespace(self.namespace)
        return {"metric": metric, "tag": tag, "files": self.files, "provenance": self.provenance, "score_rows": self.table.num_rows,
                "joined_by": store_hash}


SCORE_BATCH_ROWS = 65536  # score rows turned into Python at a time while they are checked


def load_scores(ns: str, source: ScoreSource) -> LoadedScores:
    """Reads only the columns the store keeps (ids and scores: small beside the samples), checks
    them row by row in batches, and returns them as one Arrow table."""
    spec = metric_of(ns)
    if not source.path:
        raise ConfigError(f"sources.{ns}.path is empty")
    files = _score_files(Path(source.path))
    # Only what the store keeps: scores files also hold responses, draw logs and layer profiles.
    wanted = {"id", "error", "error_detail", "passed", "pass_rate", *PROVENANCE, *(name for name, _ in spec.values)}
    table = pa.concat_tables([pq.read_table(f, columns=[c for c in pq.read_schema(f).names if c in wanted]) for f in files],
                             promote_options="permissive")
    where = ", ".join(str(f) for f in files)
    columns = table.column_names
    if spec.buckets:
        _require(columns, spec.required, spec.name, where)
        _unique_ids(table, where)
        make_row = lambda rid, group: _bucketed_row(spec, rid, group[0], where)  # noqa: E731
    else:
        if "id" not in columns or not {"pass_rate", "passed"} & set(columns):
            raise ValueError(f"{where}: not a pass-rate file: needs an id column and pass_rate (per id) or passed (per attempt)")
        if "pass_rate" in columns:
            _unique_ids(table, where)
        make_row = lambda rid, group: _pass_rate_row(columns, rid, group, where)  # noqa: E731
    provenance = _provenance(ns, table, source, files)
    out_schema = pa.schema([("id", pa.string())] + list(spec.columns()))
    parts = []
    for batch in _id_groups(table):
        rows = []
        for rid, group in batch:
            row = make_row(rid, group)
            for key in PROVENANCE:  # per row: a resumed run may span gradus versions
                row[key] = row.get(key) if row.get(key) is not None else provenance[key]
            if isinstance(row["gradus_version"], list):
                row["gradus_version"] = ", ".join(row["gradus_version"])
            rows.append({"id": rid} | row)
        parts.append(pa.Table.from_pylist(rows, schema=out_schema))
    scores = pa.concat_tables(parts) if parts else out_schema.empty_table()
    return LoadedScores(ns, scores, provenance, [str(f) for f in files])


def _id_groups(table: pa.Table) -> Iterator[list[tuple[str, list[dict]]]]:
    """Batches of (id, its rows in file order), ids ascending; a group is never split across batches."""
    if not table.num_rows:
        return
    ids = pc.cast(table.column("id"), pa.string())
    table = table.set_column(table.column_names.index("id"), "id", ids)
    ordered = table.take(pc.sort_indices(table, [("id", "ascending")]))  # stable: rows of one id keep their order
    carry: list[tuple[str, list[dict]]] = []
    for start in range(0, ordered.num_rows, SCORE_BATCH_ROWS):
        groups = carry
        for row in ordered.slice(start, SCORE_BATCH_ROWS).to_pylist():
            rid = row["id"]
            if groups and groups[-1][0] == rid:
                groups[-1][1].append(row)
            else:
                groups.append((rid, [row]))
        carry = [groups.pop()]  # the last id may go on in the next batch
        if groups:
            yield groups
    yield carry


def _score_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"no scores at {path}")
    if (path / "scores.parquet").exists():  # a PISM/CMAB job directory: its quarantined rows are errors too
        return [p for p in (path / "scores.parquet", path / "quarantine.parquet") if p.exists()]
    files = sorted(path.glob("*.parquet"))  # e.g. `gradus generate` output: flat parquet files
    if not files:
        raise FileNotFoundError(f"no parquet files in {path}")
    return files


def _provenance(ns: str, table: pa.Table, source: ScoreSource, files: list[Path]) -> dict[str, Any]:
    given = {"model_id": source.model_id or None, "config_hash": source.config_hash or None, "seed": source.seed, "gradus_version": None}
    out: dict[str, Any] = {}
    for key in PROVENANCE:
        seen = sorted(pc.unique(table.column(key).drop_null()).to_pylist(), key=str) if key in table.column_names else []
        if given[key] is not None:
            if seen and seen != [given[key]]:
                raise ConfigError(f"sources.{ns}.{key}={given[key]!r} disagrees with the file's {seen}")
            out[key] = given[key]
        elif len(seen) == 1:
            out[key] = seen[0]
        elif len(seen) > 1:
            if key != "gradus_version":  # versions may differ across a resumed run; model, settings and seed may not
                raise ConfigError(f"{ns}: the scores mix runs ({key} has {seen}); join each run under its own tag")
            out[key] = seen
        elif key == "model_id":
            raise ConfigError(f"{ns}: the scores carry no model_id; set sources.{ns}.model_id")
        elif key == "config_hash":
            out[key] = _files_hash(files)  # foreign file: its content is its identity
        else:
            out[key] = None
    return out


def _files_hash(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


def _unique_ids(table: pa.Table, where: str) -> None:
    counts = pc.value_counts(pc.cast(table.column("id"), pa.string()))
    dup = sorted(str(v) for v in pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1)).to_pylist())
    if dup:
        raise ValueError(f"{where}: duplicate ids {dup[:5]} (one row per id expected)")


def _require(columns: list[str], needed: tuple[str, ...], what: str, where: str) -> None:
    missing = [c for c in ("id",) + needed if c not in columns]
    if missing:
        raise ValueError(f"{where}: not a {what} scores file: missing columns {missing}")


def _bucketed_row(spec: MetricSpec, rid: str, r: dict, where: str) -> dict:
    """One PISM/CMAB row -> stratum + kept values. Inconsistent rows are refused, never guessed at."""
    error = r.get("error")
    row = {name: _clean(r.get(name)) for name, _ in spec.values}
    row.update({k: r.get(k) for k in PROVENANCE}, error=error, error_detail=r.get("error_detail"))
    if error is not None:
        row.update({name: None for name, _ in spec.values}, stratum="error")  # an error is no verdict
    elif row["unsolved"] is True:
        if row["bucket"] is not None:
            raise ValueError(f"{where}: id {rid} is unsolved but has bucket {row['bucket']!r}")
        row["stratum"] = "unsolved"
    elif row["unsolved"] is False and row["bucket"] in spec.buckets:
        row["stratum"] = row["bucket"]
    else:
        raise ValueError(f"{where}: id {rid} has no error, unsolved={row['unsolved']!r} and bucket {row['bucket']!r} "
                         f"(expected one of {spec.buckets}, or unsolved=True)")
    return row


def _pass_rate_row(columns: list[str], rid: str, group: list[dict], where: str) -> dict:
    """`pass_rate` per id as given, or the mean of `passed` over a generation run's judged attempts."""
    first = group[0]
    row = {k: first.get(k) for k in PROVENANCE} | {"error": None, "error_detail": None, "pass_rate": None, "n": None}
    if "pass_rate" in columns:
        row.update(pass_rate=_clean(first["pass_rate"]), n=_clean(first.get("n")), error=first.get("error"),
                   error_detail=first.get("error_detail"))
    else:
        judged = [bool(r["passed"]) for r in group if r.get("error") is None and r.get("passed") is not None]
        if judged:  # errored attempts of an otherwise judged sample do not count either way
            row.update(pass_rate=sum(judged) / len(judged), n=len(judged))
        else:
            bad = next((r for r in group if r.get("error") is not None), None)
            row.update(error=bad["error"] if bad else "no_verdict", error_detail=bad.get("error_detail") if bad else "no judged attempt")
    if row["error"] is not None:
        row.update(pass_rate=None, n=None, stratum="error")
    elif row["pass_rate"] is None or not 0.0 <= row["pass_rate"] <= 1.0:
        raise ValueError(f"{where}: id {rid} has pass_rate {row['pass_rate']!r}, expected a number in [0, 1]")
    else:
        row["stratum"] = "scored"
    return row


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and value != value else value  # NaN from pandas is a null


# ----- the store on disk -----

def read_manifest(store: str | Path) -> dict[str, Any]:
    path = Path(store) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{store} is not a difficulty store (no {MANIFEST}); build one with `gradus store build`")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != STORE_FORMAT:
        raise ValueError(f"{path}: format {manifest.get('format')!r}, expected {STORE_FORMAT!r}")
    return manifest


def _partitioning(partition_by: Sequence[str]) -> ds.Partitioning:
    # Explicit string types: a domain named "2024" must not come back as an integer.
    return ds.partitioning(pa.schema([(name, pa.string()) for name in partition_by]), flavor="hive")


def store_dataset(store: str | Path) -> ds.Dataset:
    manifest = read_manifest(store)
    return ds.dataset(Path(store) / DATA_DIR, format="parquet", partitioning=_partitioning(manifest["partition_by"]))


def read_store(store: str | Path, *, where: dict[str, Sequence[Any]] | None = None, columns: Sequence[str] | None = None) -> pa.Table:
    """Rows (sorted by id) whose columns hold one of the given values, e.g. where={"pism.stratum": ["mid"]};
    conditions on partition columns open only those directories."""
    manifest = read_manifest(store)
    dataset = store_dataset(store)
    condition = None
    for name, values in (where or {}).items():
        if name not in dataset.schema.names:
            raise ConfigError(f"read_store: no column {name!r} in {store}")
        term = pc.field(name).isin(pa.array(list(values), type=dataset.schema.field(name).type))  # typed: [] must work too
        condition = term if condition is None else condition & term
    wanted = list(columns) if columns is not None else manifest["columns"]
    table = dataset.to_table(columns=wanted, filter=condition)
    if "id" in wanted:
        table = table.take(pc.sort_indices(table, [("id", "ascending")]))
    return table


def store_schema(namespaces: Sequence[str]) -> pa.Schema:
    fields = list(SAMPLE_SCHEMA)
    for ns in sorted(namespaces):
        fields += [pa.field(column(ns, name), t) for name, t in metric_of(ns).columns()]
    return pa.schema(fields)


def _check_partitions(partition_by: Sequence[str], namespaces: Sequence[str]) -> None:
    allowed = list(PARTITIONABLE_SAMPLE_COLUMNS) + [column(ns, c) for ns in sorted(namespaces) for c in PARTITIONABLE_METRIC_COLUMNS
                                                     if c == "stratum" or metric_of(ns).buckets]
    for name in partition_by:
        if name not in allowed:
            raise ConfigError(f"partition_by: {name!r} is not a partitionable column of this store; allowed: {allowed}")
    if len(set(partition_by)) != len(partition_by):
        raise ConfigError(f"partition_by repeats a column: {list(partition_by)}")


def _sample_files(samples: str | None, previous_store: Path | None) -> tuple[list[str], Any]:
    """Files of canonical rows to tag, and how a worker reads one: sample shards, or (adding metrics
    only) the store's own data files, their partition columns restored from the directories."""
    if samples:
        return [str(p) for p in shard_paths(samples)], functools.partial(_read_shard)
    return store_files(previous_store, SAMPLE_SCHEMA.names)


def _read_shard(path: str) -> pa.Table:
    return pq.read_table(path, schema=SAMPLE_SCHEMA)


def store_files(store: str | Path, columns: Sequence[str]) -> tuple[list[str], Any]:
    """The store's data files, and a reader (picklable, for Ray workers) of one file's `columns`,
    partition columns included."""
    manifest = read_manifest(store)
    files = sorted(f.path for f in store_dataset(store).get_fragments())
    return files, functools.partial(_read_store_file, data_dir=str(Path(store) / DATA_DIR), partition_by=tuple(manifest["partition_by"]),
                                    columns=tuple(columns))


def _read_store_file(path: str, data_dir: str, partition_by: tuple[str, ...], columns: tuple[str, ...]) -> pa.Table:
    dataset = ds.dataset([path], format="parquet", partitioning=_partitioning(partition_by), partition_base_dir=data_dir)
    table = dataset.to_table(columns=list(columns))
    return table.cast(SAMPLE_SCHEMA) if list(columns) == SAMPLE_SCHEMA.names else table


def _previous_scores(store: Path, manifest: dict, namespaces: Sequence[str]) -> dict[str, pa.Table]:
    """Rows of namespaces already in the store that this build keeps (scored or errored only)."""
    out = {}
    for ns in namespaces:
        names = [name for name, _ in metric_of(ns).columns()]
        table = read_store(store, columns=["id"] + [column(ns, name) for name in names])
        table = table.filter(pc.field(column(ns, "stratum")) != "unscored")
        out[ns] = table.rename_columns(["id"] + names)
    return out


def _previous_unmatched(store: Path, namespaces: Sequence[str]) -> dict[str, pa.Array]:
    if not namespaces:
        return {}
    table = pq.read_table(store / UNMATCHED)
    return {ns: table.filter(pc.field("namespace") == ns).column("id").combine_chunks() for ns in namespaces}


class ProvenanceConflict(ConfigError):
    """A namespace already in the store holds another run's scores."""


def build_store(
    output: str | Path,
    sources: dict[str, ScoreSource],
    *,
    samples: str = "",
    partition_by: Sequence[str] | None = None,
    replace: Sequence[str] = (),
    rows_per_file: int = 4096,
    actors: int = 0,
    local_below_rows: int = LOCAL_BELOW_ROWS,
) -> dict[str, Any]:
    """Join `sources` onto `samples` (or onto the store already at `output`) and publish the store
    at `output` atomically. `partition_by` None keeps the store's partitioning ([domain] for a new
    store). The samples stream through a Ray Data job (`actors` joining workers; 0 = one per CPU),
    `rows_per_file` rows a block; fewer than `local_below_rows` samples are joined in this process
    by the same code. Returns the manifest."""
    out = Path(output)
    previous = read_manifest(out) if (out / MANIFEST).exists() else None
    if previous is None and out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not a difficulty store; choose an empty or new output directory")
    if previous is None and not samples:
        raise ConfigError("store build: samples is required for a new store (canonical shards)")
    if partition_by is None:
        partition_by = previous["partition_by"] if previous else DEFAULT_PARTITIONS
    for ns in sources:
        parse_namespace(ns)
    stray = sorted(set(replace) - set(sources))
    if stray:
        raise ConfigError(f"replace names {stray}, which this build does not score; sources: {sorted(sources)}")

    loaded = {ns: load_scores(ns, src) for ns, src in sorted(sources.items())}
    old_sources = previous["sources"] if previous else {}
    status = _statuses(loaded, old_sources, replace)
    carried = sorted(ns for ns, st in status.items() if st == "carried")
    scores = {ns: s.table for ns, s in loaded.items()} | _previous_scores(out, previous, carried)
    namespaces = sorted(scores)
    _check_partitions(partition_by, namespaces)
    schema = store_schema(namespaces)
    base_samples = samples or previous["samples"]
    provenance = {ns: loaded[ns].provenance if ns in loaded else old_sources[ns]["provenance"] for ns in namespaces}
    # What decides the store's content: the samples, each namespace's run and the layout; the same build
    # twice gives the same hash, and adding a run changes it.
    chash = config_hash({"samples": base_samples, "sources": provenance, "partition_by": list(partition_by)})

    # a unique temporary name: two builds of one store may run at once
    with publish_dir(out, partial=out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}") as tmp:
        files, read = _sample_files(samples, out if previous else None)
        seen, strata = _write_rows(files, read, scores, schema, partition_by, tmp / DATA_DIR, rows_per_file, actors, local_below_rows)
        lost = _previous_unmatched(out, carried)  # ids a carried run scored that no store row ever held
        unmatched = _unmatched(namespaces, scores, lost, seen)
        pq.write_table(unmatched, tmp / UNMATCHED)
        entries = {ns: (dict(old_sources[ns]) if status[ns] == "carried" else loaded[ns].entry(chash))
                   | _join_counts(ns, status[ns], strata[ns], unmatched) for ns in namespaces}
        manifest = {
            "format": STORE_FORMAT,
            "gradus_version": __version__,
            "config_hash": chash,
            "seed": None,  # building a store draws nothing at random; each source's seed is in its provenance
            "samples": base_samples,
            "rows": len(seen),
            "partition_by": list(partition_by),
            "columns": schema.names,
            "sources": entries,
            "unmatched": {"file": UNMATCHED, "rows": unmatched.num_rows},
            "history": (previous or {}).get("history", []) + [{"config_hash": chash, "gradus_version": __version__, "namespaces": status}],
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return manifest


def _statuses(loaded: dict[str, LoadedScores], old_sources: dict[str, dict], replace: Sequence[str]) -> dict[str, str]:
    """added | refreshed (same run again) | replaced (asked for) | carried (kept from the store); a
    namespace that exists with another run's provenance is refused."""
    status = {}
    for ns, scores in loaded.items():
        if ns not in old_sources:
            status[ns] = "added"
        elif _same_provenance(old_sources[ns]["provenance"], scores.provenance):
            status[ns] = "refreshed"
        elif ns in replace:
            status[ns] = "replaced"
        else:
            raise ProvenanceConflict(
                f"{ns} already holds scores from {old_sources[ns]['provenance']}; these come from {scores.provenance}. "
                f"Join them under another tag (sources.{ns.split('@')[0]}@<tag>) or set replace=[{ns}] to replace them.")
    return dict(sorted((status | {ns: "carried" for ns in old_sources if ns not in loaded}).items()))


def _write_rows(files: list[str], read: Any, scores: dict[str, pa.Table], schema: pa.Schema, partition_by: Sequence[str],
                data_dir: Path, rows_per_file: int, actors: int, local_below_rows: int) -> tuple[pa.Array, dict[str, dict[str, int]]]:
    """Stream the samples through Ray Data: each block gets every namespace's columns joined on by
    id and is written into the partition directories by the worker that holds it. Returns the ids
    seen and the count per stratum of every namespace."""
    if not files:
        raise ValueError("samples: no rows to tag")
    kwargs = {"scores": Shared(scores), "schema": schema, "partition_by": tuple(partition_by), "data_dir": str(data_dir)}
    ids, strata = [], {ns: Counter() for ns in scores}
    for result in run_blocks(files, rows_per_file, read, _TagBlock, kwargs, actors, local_below_rows):
        ids.append(result.column("id"))
        for ns in scores:
            strata[ns].update(dict(zip(*(c.to_pylist() for c in pc.value_counts(result.column(ns)).flatten()))))
    seen = pa.chunked_array(ids, type=pa.string()).combine_chunks() if ids else pa.array([], pa.string())
    if not len(seen):
        raise ValueError("samples: no rows to tag")
    counts = pc.value_counts(seen)
    dup = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    if len(dup):
        raise ValueError(f"samples: duplicate ids {sorted(dup.to_pylist())[:5]}")
    return seen, {ns: dict(c) for ns, c in strata.items()}


class _TagBlock:
    """Ray Data actor: joins the namespaces' columns onto a block of samples and writes it."""

    def __init__(self, scores: Shared, schema: pa.Schema, partition_by: tuple[str, ...], data_dir: str):
        self.scores = scores.get()  # namespace -> id + metric columns; read-only, shared through the object store
        self.index = {ns: IdIndex(table.column("id")) for ns, table in self.scores.items()}
        self.schema, self.partitioning, self.data_dir = schema, _partitioning(partition_by), data_dir

    def __call__(self, block: pa.Table) -> pa.Table:
        ids = block.column("id")
        table, strata = block, {}
        for ns in sorted(self.scores):
            rows = take_rows(self.scores[ns], self.index[ns].positions(ids))
            for name, _ in metric_of(ns).columns():
                values = rows.column(name)
                if name == "stratum":  # a sample no run scored is "unscored", never a null stratum
                    values = pc.fill_null(values, "unscored")
                    strata[ns] = values
                table = table.append_column(column(ns, name), values)
        table = table.cast(self.schema)
        ds.write_dataset(table, self.data_dir, format="parquet", partitioning=self.partitioning,
                         basename_template=f"part-{block_tag(ids)}-{{i}}.parquet", existing_data_behavior="overwrite_or_ignore")
        return pa.table({"id": pc.cast(ids, pa.string()), **strata})


def _unmatched(namespaces: Sequence[str], scores: dict[str, pa.Table], lost: dict[str, pa.Array], seen: pa.Array) -> pa.Table:
    """Score ids (and ids a carried run had already missed) that no sample has, per namespace, sorted."""
    parts = []
    for ns in namespaces:
        ids = pa.concat_arrays([scores[ns].column("id").combine_chunks(), lost.get(ns, pa.array([], pa.string()))])
        missing = pc.unique(pc.filter(ids, pc.invert(pc.is_in(ids, value_set=seen))))
        missing = pc.take(missing, pc.sort_indices(missing))
        parts.append(pa.table({"namespace": pa.array([ns] * len(missing), pa.string()), "id": missing,
                               "reason": pa.array(["not in samples"] * len(missing), pa.string())}, schema=UNMATCHED_SCHEMA))
    return pa.concat_tables(parts) if parts else UNMATCHED_SCHEMA.empty_table()


def _join_counts(ns: str, status: str, strata: dict[str, int], unmatched: pa.Table) -> dict[str, Any]:
    misses = unmatched.filter(pc.field("namespace") == ns).column("id")
    return {"status": status, "strata": dict(sorted(strata.items())), "unmatched": len(misses), "unmatched_examples": misses[:10].to_pylist()}


def _same_provenance(old: dict, new: dict) -> bool:
    return json.loads(json.dumps(old, default=str)) == json.loads(json.dumps(new, default=str))
