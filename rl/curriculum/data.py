"""Stage data inside a curriculum: Curr-ReFT variants made in the job, and fingerprints for resume.

`reformulate:<stage>:<source>` (stage: judge | choice | open; source: any data reference of
rl/grpo/sources.py, e.g. `warmstart:configs/warmstart/tiny.yaml:train?tasks=color&per_task=64`, or a
canonical shard folder of one split) runs `gradus data reformulate`'s job
(engine/shaping/reformulate_job.py) on the source once per curriculum, with
configs/reformulate/default.yaml's settings and the curriculum's seed, into
`<output_dir>/data/reformulate-<key>/` (published atomically; `key` hashes the source's files, the
selection and the settings), and the stage trains on `<that>/<stage>/<split>`. The judge, choice
and open stages of one source share one run, so their variants come from the same sources.

`fingerprint(path)`: what a stage's resume hash records of its input model and its data (every
file's relative path, size and mtime, not its bytes: a 7B model is not re-read per stage).
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from engine.config import ConfigError, config_hash, load_config, to_dict

REFORMULATE = "reformulate:"
REFORMULATE_DEFAULTS = "configs/reformulate/default.yaml"


def fingerprint(path: str | Path) -> dict:
    """{path, files: hash of (relative path, size, mtime_ns) of every file}, or {path, missing: True}."""
    p = Path(path)
    if not p.exists():
        return {"path": str(p), "missing": True}
    files = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file())
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(p) if f != p else f.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return {"path": str(p.resolve()), "files": len(files), "digest": h.hexdigest()[:16]}


def parse_reformulate(spec: str) -> tuple[str, str]:
    """`reformulate:<stage>:<source>` -> (stage, source)."""
    from engine.shaping.reformulate import STAGES

    stage, sep, source = spec[len(REFORMULATE):].partition(":")
    if not sep or stage not in STAGES or not source:
        raise ConfigError(f"data {spec!r}: expected reformulate:<stage>:<source> with stage in {STAGES}")
    return stage, source


def data_fingerprint(spec: str) -> dict:
    """What a stage's hash records of its data spec: the spec and the files of its base source."""
    from rl.grpo.sources import _base_path, parse_source

    if not spec:
        return {"spec": ""}
    if spec.startswith(REFORMULATE):
        _, source = parse_reformulate(spec)
        return {"spec": spec, "source": data_fingerprint(source)}
    base, _ = parse_source(spec)
    return {"spec": spec, "base": fingerprint(_base_path(base))}


def resolve_stage_data(spec: str, out_dir: Path, seed: int) -> str:
    """A stage's data spec with `reformulate:` references produced and replaced by their shard folder;
    anything else is returned unchanged (the stage's recipe resolves `warmstart:` and `?tasks=` itself)."""
    if not spec.startswith(REFORMULATE):
        return spec
    from engine.shaping.reformulate_job import ReformulateJobConfig, run_reformulate
    from rl.grpo.sources import repo_path, resolve_data

    stage, source = parse_reformulate(spec)
    job = load_config(ReformulateJobConfig, repo_path(REFORMULATE_DEFAULTS))
    job.reformulate.seed = seed
    key = config_hash({"source": data_fingerprint(source), "reformulate": to_dict(job.reformulate)})
    folder = out_dir / "data" / f"reformulate-{key}"
    if not (folder / "summary.json").is_file():
        tmp = folder.with_name(folder.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        shards = resolve_data(source, tmp / "source", "selected")  # a ?tasks= selection is written inside tmp
        job.input, job.output = str(shards), str(tmp)
        summary = run_reformulate(job)
        (tmp / "summary.json").write_text(json.dumps({**summary, "output": str(folder), "reference": spec}, indent=2))
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    splits = sorted(p.name for p in (folder / stage).iterdir() if p.is_dir()) if (folder / stage).is_dir() else []
    if len(splits) != 1:
        raise ConfigError(f"data {spec!r}: the source must be one split (e.g. warmstart:<config>:train); "
                          f"the reformulated {stage} variants are in splits {splits}")
    return str(folder / stage / splits[0])
