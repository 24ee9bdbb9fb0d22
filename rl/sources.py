"""Source references: where a training run's model and data come from, resolved in one place.

A config file cannot spell the embedded default's cache folders (their names carry a config hash),
nor the folder a Curr-ReFT reformulation is written to, so `model_path` and the data fields
(SFT `train_data`, GRPO `data.train` / `data.val`, a demo's pool) accept references:

- a path: an HF model folder, canonical shards, or a verl parquet file (data). Relative paths
  resolve against the working directory first, then the gradus repository root;
- model `warmstart:<config.yaml>`: the warm-started model folder (`rl.warmstart.ensure_warmstart`,
  built and cached on first use);
- data `warmstart:<config.yaml>:<split>`: that config's synthetic corpus split
  (`rl.warmstart.ensure_corpus`); any split name the corpus has (train, val, test);
- data `reformulate:<stage>:<source>` (stage: judge | choice | open; source: any other data
  reference of one split): `gradus data reformulate`'s job run once on the source, with
  configs/reformulate/default.yaml's settings and the caller's seed, into
  `<out_dir>/reformulate-<key>/` (published atomically; `key` hashes the source's files, the
  selection and the settings); the reference names `<that>/<stage>/<split>`. The judge, choice and
  open variants of one source share one run.

Any data source but a reformulation may end in a selection query, `?tasks=color,counting&per_task=64`:
the first `per_task` rows of each listed task, in corpus order, written as one canonical shard
under `<out_dir>/<name>-subset/`. A verl parquet file is used as it is and takes no query.

`TrainInputs` is what SFT and GRPO configs share for these fields, so code that handles either
(a curriculum stage) reads and rewrites the training data reference without asking which it is.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs

import yaml

from engine import __version__
from engine.config import ConfigError, config_hash, from_dict, load_config, to_dict
from engine.paths import cache_root, repo_path
from engine.publish import publish_dir

WARMSTART = "warmstart:"
REFORMULATE = "reformulate:"
REFORMULATE_DEFAULTS = "configs/reformulate/default.yaml"


class TrainInputs(Protocol):
    """The model and data fields SFT and GRPO configs share (rl/sft/config.py, rl/grpo/config.py)."""

    model_path: str  # a model reference
    output_dir: str
    train_source: str  # the training data reference (SFT train_data, GRPO data.train), readable and settable


@dataclass(frozen=True)
class Selection:
    tasks: tuple[str, ...] = ()
    per_task: int = 0  # 0: every row of the selected tasks

    @property
    def empty(self) -> bool:
        return not self.tasks and not self.per_task


def _warmstart_config(path: str):
    from rl.warmstart import WarmstartConfig

    file = repo_path(path)
    if not file.is_file():
        raise ConfigError(f"warm-start config {path} not found (looked for {file})")
    return load_config(WarmstartConfig, file)


def resolve_model(spec: str) -> tuple[Path, str]:
    """(model folder, model id) for `model_path`: a folder, or `warmstart:<config.yaml>`."""
    if spec.startswith(WARMSTART):
        from rl.warmstart import ensure_warmstart

        ws = _warmstart_config(spec[len(WARMSTART):])
        return ensure_warmstart(ws), ws.model.model_id
    path = repo_path(spec)
    if not (path / "config.json").is_file():
        raise ConfigError(f"model_path {spec}: no HF model folder at {path} (config.json missing)")
    model_id = str(path)
    meta = path / "gradus_model.json"
    if meta.is_file():
        model_id = json.loads(meta.read_text()).get("model_id") or model_id
    return path, model_id


def parse_source(spec: str) -> tuple[str, Selection]:
    """Split `source?tasks=a,b&per_task=N` into the source and its selection."""
    base, _, query = spec.partition("?")
    if not query:
        return base, Selection()
    params = parse_qs(query, strict_parsing=True)
    unknown = set(params) - {"tasks", "per_task"}
    if unknown:
        raise ConfigError(f"data source {spec!r}: unknown selection key(s) {sorted(unknown)}; known: per_task, tasks")
    tasks = tuple(t for v in params.get("tasks", []) for t in v.split(",") if t)
    try:
        per_task = int(params.get("per_task", ["0"])[-1])
    except ValueError as exc:
        raise ConfigError(f"data source {spec!r}: per_task must be an integer") from exc
    if per_task < 0:
        raise ConfigError(f"data source {spec!r}: per_task must be >= 0")
    return base, Selection(tasks, per_task)


def parse_reformulate(spec: str) -> tuple[str, str]:
    """`reformulate:<stage>:<source>` -> (stage, source)."""
    from engine.shaping.reformulate import STAGES

    stage, sep, source = spec[len(REFORMULATE):].partition(":")
    if not sep or stage not in STAGES or not source or source.startswith(REFORMULATE):
        raise ConfigError(f"data {spec!r}: expected reformulate:<stage>:<source> with stage in {STAGES}")
    return stage, source


def _base_path(base: str) -> Path:
    if base.startswith(WARMSTART):
        from rl.warmstart import ensure_corpus

        ref, sep, split = base[len(WARMSTART):].rpartition(":")
        if not sep or not ref or not split:
            raise ConfigError(f"data source {base!r}: expected warmstart:<config.yaml>:<split>")
        ws = _warmstart_config(ref)
        path = ensure_corpus(ws.synth, cache_root(ws.cache_dir)) / split
        if not path.is_dir():
            raise ConfigError(f"data source {base!r}: the corpus has no split {split!r} ({path})")
        return path
    path = repo_path(base)
    if not path.exists():
        raise ConfigError(f"grpo data {base} does not exist")
    return path


def _select(path: Path, sel: Selection, out: Path) -> Path:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from engine.data.shards import read_table

    table = read_table(path)
    present = sorted(set(table.column("task").to_pylist()))
    tasks = sel.tasks or tuple(present)
    missing = [t for t in tasks if t not in present]
    if missing:
        raise ConfigError(f"grpo data {path}: no rows for task(s) {missing}; present: {present}")
    parts = []
    for task in tasks:
        rows = table.filter(pc.equal(table.column("task"), task))
        parts.append(rows.slice(0, sel.per_task) if sel.per_task else rows)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.parquet"):
        old.unlink()
    pq.write_table(pa.concat_tables(parts), out / "part-00000.parquet")
    return out


def resolve_data(spec: str, out_dir: Path, name: str, *, seed: int = 0) -> Path:
    """Canonical shards or a verl parquet file for any data reference. What a reference makes is
    written under `out_dir` (a selection's shard, a reformulation); `seed` seeds a reformulation."""
    if spec.startswith(REFORMULATE):
        return _reformulated(spec, out_dir, seed)
    from engine.data.formats.verl import is_verl_file

    base, sel = parse_source(spec)
    path = _base_path(base)
    if sel.empty:
        return path
    if is_verl_file(path):
        raise ConfigError(f"data source {spec!r}: a selection query needs canonical shards, not a verl parquet file")
    return _select(path, sel, out_dir / f"{name}-subset")


def _reformulated(spec: str, out_dir: Path, seed: int) -> Path:
    """The shard folder of a `reformulate:` reference, running the reformulate job on its source once."""
    from engine.shaping.reformulate import reformulate_shards

    stage, source = parse_reformulate(spec)
    cfg, rows_per_shard = _reformulate_defaults()
    cfg.seed = seed
    key = config_hash({"source": data_fingerprint(source), "reformulate": to_dict(cfg)})
    folder = out_dir / f"reformulate-{key}"
    if not (folder / "summary.json").is_file():
        with publish_dir(folder) as tmp:
            shards = resolve_data(source, tmp / "source", "selected")  # a ?tasks= selection is written inside tmp
            summary = reformulate_shards(str(shards), tmp, cfg, rows_per_shard=rows_per_shard)
            summary |= {"gradus_version": __version__, "output": str(folder), "reference": spec}
            (tmp / "summary.json").write_text(json.dumps(summary, indent=2))
    splits = sorted(p.name for p in (folder / stage).iterdir() if p.is_dir()) if (folder / stage).is_dir() else []
    if len(splits) != 1:
        raise ConfigError(f"data {spec!r}: the source must be one split (e.g. warmstart:<config>:train); "
                          f"the reformulated {stage} variants are in splits {splits}")
    return folder / stage / splits[0]



def _reformulate_defaults() -> tuple[Any, int]:
    """The `reformulate` section and rows_per_shard of the reformulate job's default file: a
    reference is reformulated as `gradus data reformulate` would with its defaults."""
    from engine.shaping.reformulate import ReformulateConfig

    data = yaml.safe_load(repo_path(REFORMULATE_DEFAULTS).read_text(encoding="utf-8")) or {}
    return from_dict(ReformulateConfig, data.get("reformulate", {}), "reformulate."), int(data.get("rows_per_shard", 512))

def fingerprint(path: str | Path) -> dict:
    """{path, files: hash of (relative path, size, mtime_ns) of every file}, or {path, missing: True}.
    Sizes and mtimes, not bytes: a 7B model is not re-read to decide whether it changed."""
    p = Path(path)
    if not p.exists():
        return {"path": str(p), "missing": True}
    files = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file())
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(p) if f != p else f.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return {"path": str(p.resolve()), "files": len(files), "digest": h.hexdigest()[:16]}


def data_fingerprint(spec: str) -> dict:
    """What identifies a data reference without resolving it: the spec and the files of its base source
    (a selection or a reformulation is made from those, so they change only when the base does)."""
    if not spec:
        return {"spec": ""}
    if spec.startswith(REFORMULATE):
        _, source = parse_reformulate(spec)
        return {"spec": spec, "source": data_fingerprint(source)}
    base, _ = parse_source(spec)
    return {"spec": spec, "base": fingerprint(_base_path(base))}
