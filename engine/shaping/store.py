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
    """One namespace's rows by sample id (unqualified column names) and the run's provenance."""

    namespace: str
    rows: dict[str, dict[str, Any]]
    provenance: dict[str, Any]
    files: list[str]

    def entry(self, store_hash: str) -> dict[str, Any]:
        """The manifest's record of this run (joined_by: the store build that joined it)."""
        metric, tag = parse_namespace(self.namespace)
        return {"metric": metric, "tag": tag, "files": self.files, "provenance": self.provenance, "score_rows": len(self.rows),
                "joined_by": store_hash}


def load_scores(ns: str, source: ScoreSource) -> LoadedScores:
    spec = metric_of(ns)
    if not source.path:
        raise ConfigError(f"sources.{ns}.path is empty")
    files = _score_files(Path(source.path))
    # Only what the store keeps: scores files also hold responses, draw logs and layer profiles.
    wanted = {"id", "error", "error_detail", "passed", "pass_rate", *PROVENANCE, *(name for name, _ in spec.values)}
    table = pa.concat_tables([pq.read_table(f, columns=[c for c in pq.read_schema(f).names if c in wanted]) for f in files],
                             promote_options="permissive")
    raw = table.to_pylist()
    where = ", ".join(str(f) for f in files)
    if spec.buckets:
        rows = _bucketed_rows(spec, table.column_names, raw, where)
    else:
        rows = _pass_rate_rows(table.column_names, raw, where)
    provenance = _provenance(ns, table.column_names, raw, source, files)
    for rid, row in rows.items():
        for key in PROVENANCE:  # per row: a resumed run may span gradus versions
            row[key] = row.get(key) if row.get(key) is not None else provenance[key]
        if isinstance(row["gradus_version"], list):
            row["gradus_version"] = ", ".join(row["gradus_version"])
    return LoadedScores(ns, rows, provenance, [str(f) for f in files])


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


def _provenance(ns: str, columns: list[str], raw: list[dict], source: ScoreSource, files: list[Path]) -> dict[str, Any]:
    given = {"model_id": source.model_id or None, "config_hash": source.config_hash or None, "seed": source.seed, "gradus_version": None}
    out: dict[str, Any] = {}
    for key in PROVENANCE:
        seen = sorted({r[key] for r in raw if r.get(key) is not None}, key=str) if key in columns else []
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


def _unique_ids(raw: list[dict], where: str) -> None:
    dup = sorted(i for i, n in Counter(str(r["id"]) for r in raw).items() if n > 1)
    if dup:
        raise ValueError(f"{where}: duplicate ids {dup[:5]} (one row per id expected)")


def _require(columns: list[str], needed: tuple[str, ...], what: str, where: str) -> None:
    missing = [c for c in ("id",) + needed if c not in columns]
    if missing:
        raise ValueError(f"{where}: not a {what} scores file: missing columns {missing}")


def _bucketed_rows(spec: MetricSpec, columns: list[str], raw: list[dict], where: str) -> dict[str, dict]:
    """PISM/CMAB rows -> stratum + kept values. Inconsistent rows are refused, never guessed at."""
    _require(columns, spec.required, spec.name, where)
    _unique_ids(raw, where)
    rows = {}
    for r in raw:
        rid, error = str(r["id"]), r.get("error")
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
        rows[rid] = row
    return rows


def _pass_rate_rows(columns: list[str], raw: list[dict], where: str) -> dict[str, dict]:
    """`pass_rate` per id as given, or the mean of `passed` over a generation run's judged attempts."""
    if "id" not in columns or not {"pass_rate", "passed"} & set(columns):
        raise ValueError(f"{where}: not a pass-rate file: needs an id column and pass_rate (per id) or passed (per attempt)")
    if "pass_rate" in columns:
        _unique_ids(raw, where)
    groups: dict[str, list[dict]] = {}
    for r in raw:
        groups.setdefault(str(r["id"]), []).append(r)
    rows = {}
    for rid, group in groups.items():
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
        rows[rid] = row
    return rows


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


def _metric_arrays(ids: list[str], scores: dict[str, dict[str, dict]]) -> list[tuple[str, pa.Array]]:
    out = []
    for ns in sorted(scores):
        rows = scores[ns]
        for name, t in metric_of(ns).columns():
            if name == "stratum":  # a sample no run scored is "unscored", never a null stratum
                values = [rows[i]["stratum"] if i in rows else "unscored" for i in ids]
            else:
                values = [rows[i].get(name) if i in rows else None for i in ids]
            out.append((column(ns, name), pa.array(values, type=t)))
    return out


def _base_chunks(samples: str | None, previous_store: Path | None, rows_per_file: int) -> Iterator[pa.Table]:
    """Canonical rows to tag: from sample shards, or (adding metrics only) from the store itself."""
    if samples:
        for path in shard_paths(samples):
            table = pq.read_table(path, schema=SAMPLE_SCHEMA)
            for start in range(0, table.num_rows, rows_per_file):
                yield table.slice(start, rows_per_file)
        return
    dataset = store_dataset(previous_store)
    for fragment in sorted(dataset.get_fragments(), key=lambda f: f.path):
        table = fragment.to_table(schema=dataset.schema, columns=SAMPLE_SCHEMA.names).cast(SAMPLE_SCHEMA)
        for start in range(0, table.num_rows, rows_per_file):
            yield table.slice(start, rows_per_file)


def _previous_scores(store: Path, manifest: dict, namespaces: Sequence[str]) -> dict[str, dict[str, dict]]:
    """Rows of namespaces already in the store that this build keeps (scored or errored only)."""
    if not namespaces:
        return {}
    names = ["id"] + [column(ns, name) for ns in namespaces for name, _ in metric_of(ns).columns()]
    table = read_store(store, columns=names)
    out: dict[str, dict[str, dict]] = {ns: {} for ns in namespaces}
    for row in table.to_pylist():
        for ns in namespaces:
            if row[column(ns, "stratum")] != "unscored":
                out[ns][row["id"]] = {name: row[column(ns, name)] for name, _ in metric_of(ns).columns()}
    return out


def _previous_unmatched(store: Path, namespaces: Sequence[str]) -> dict[str, set[str]]:
    if not namespaces:
        return {}
    out: dict[str, set[str]] = {}
    for row in pq.read_table(store / UNMATCHED).to_pylist():
        if row["namespace"] in namespaces:
            out.setdefault(row["namespace"], set()).add(row["id"])
    return out


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
) -> dict[str, Any]:
    """Join `sources` onto `samples` (or onto the store already at `output`) and publish the store
    at `output` atomically. `partition_by` None keeps the store's partitioning ([domain] for a new
    store). Returns the manifest."""
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
    scores = {ns: s.rows for ns, s in loaded.items()} | _previous_scores(out, previous, carried)
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
        chunks = _base_chunks(samples, out if previous else None, rows_per_file)
        seen, strata = _write_rows(chunks, scores, schema, partition_by, tmp / DATA_DIR)
        lost = _previous_unmatched(out, carried)  # ids a carried run scored that no store row ever held
        unmatched = [{"namespace": ns, "id": rid, "reason": "not in samples"} for ns in namespaces
                     for rid in sorted((set(scores[ns]) | lost.get(ns, set())) - seen)]
        pq.write_table(pa.Table.from_pylist(unmatched, schema=UNMATCHED_SCHEMA), tmp / UNMATCHED)
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
            "unmatched": {"file": UNMATCHED, "rows": len(unmatched)},
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


def _write_rows(chunks: Iterator[pa.Table], scores: dict[str, dict[str, dict]], schema: pa.Schema, partition_by: Sequence[str],
                data_dir: Path) -> tuple[set[str], dict[str, dict[str, int]]]:
    """Tag each chunk of samples and write it into the partition directories; returns the ids seen
    and the count per stratum of every namespace."""
    seen: set[str] = set()
    strata: dict[str, dict[str, int]] = {ns: {} for ns in scores}
    for index, chunk in enumerate(chunks):
        ids = chunk.column("id").to_pylist()
        dup = seen.intersection(ids) | {i for i, n in Counter(ids).items() if n > 1}
        if dup:
            raise ValueError(f"samples: duplicate ids {sorted(dup)[:5]}")
        seen.update(ids)
        table = chunk
        for name, array in _metric_arrays(ids, scores):
            table = table.append_column(name, array)
        for ns in scores:
            for value, n in Counter(table.column(column(ns, "stratum")).to_pylist()).items():
                strata[ns][value] = strata[ns].get(value, 0) + n
        ds.write_dataset(table.cast(schema), data_dir, format="parquet", partitioning=_partitioning(partition_by),
                         basename_template=f"part-{index:05d}-{{i}}.parquet", existing_data_behavior="overwrite_or_ignore")
    if not seen:
        raise ValueError("samples: no rows to tag")
    return seen, strata


def _join_counts(ns: str, status: str, strata: dict[str, int], unmatched: list[dict]) -> dict[str, Any]:
    misses = [u["id"] for u in unmatched if u["namespace"] == ns]
    return {"status": status, "strata": dict(sorted(strata.items())), "unmatched": len(misses), "unmatched_examples": misses[:10]}


def _same_provenance(old: dict, new: dict) -> bool:
    return json.loads(json.dumps(old, default=str)) == json.loads(json.dumps(new, default=str))
