"""Where a GRPO run's model and data come from: plain paths, or the embedded default by reference.

A config file cannot spell the embedded default's cache folders (their names carry a config hash),
so `model_path` and `data.train` / `data.val` also accept a reference to a warm-start config:

- model_path: `warmstart:configs/warmstart/tiny.yaml` -> the warm-started model folder
  (`rl.warmstart.ensure_warmstart`, built and cached on first use);
- data: `warmstart:configs/warmstart/tiny.yaml:train` -> that config's synthetic corpus split
  (`rl.warmstart.ensure_corpus`); any split name the corpus has (train, val, test).

Any data source (a reference or a canonical shard path) may end in a selection query,
`?tasks=color,counting&per_task=64`: the first `per_task` rows of each listed task, in corpus order,
written as one canonical shard under `<out_dir>/<name>-subset/` (then exported to verl parquet like
any other shards). A verl parquet file is used as it is and takes no query.
Relative paths resolve against the working directory first, then the gradus repository root.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

from engine.config import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
WARMSTART = "warmstart:"


def repo_path(path: str | Path) -> Path:
    """An existing path as given (cwd-relative), else relative to the repo root; absolute, user-expanded."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p.resolve()
    return (REPO_ROOT / p).resolve()


@dataclass(frozen=True)
class Selection:
    tasks: tuple[str, ...] = ()
    per_task: int = 0  # 0: every row of the selected tasks

    @property
    def empty(self) -> bool:
        return not self.tasks and not self.per_task


def _warmstart_config(path: str):
    from engine.config import load_config
    from rl.warmstart import WarmstartConfig

    file = repo_path(path)
    if not file.is_file():
        raise ConfigError(f"warm-start config {path} not found (looked for {file})")
    return load_config(WarmstartConfig, file)


def resolve_model(spec: str) -> tuple[Path, str]:
    """(model folder, model id) for `model_path`: a folder, or `warmstart:<config.yaml>`."""
    import json

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


def _base_path(base: str) -> Path:
    if base.startswith(WARMSTART):
        from rl.warmstart import cache_root, ensure_corpus

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


def resolve_data(spec: str, out_dir: Path, name: str) -> Path:
    """Canonical shards or a verl parquet file for `spec`; a selection query is applied (to shards only)."""
    from rl.grpo.data import is_verl_file

    base, sel = parse_source(spec)
    path = _base_path(base)
    if sel.empty:
        return path
    if is_verl_file(path):
        raise ConfigError(f"data source {spec!r}: a selection query needs canonical shards, not a verl parquet file")
    return _select(path, sel, out_dir / f"{name}-subset")
