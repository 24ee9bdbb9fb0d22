"""One ledger of a job's stages, so rerunning the same command skips what finished and redoes what
changed or never finished.

Each stage has an entry under its name: the hash of what it runs for (config and inputs), its
state (`running` from the moment it starts, `done` with its record once it finished) and the
record. Every change is published whole (engine/publish.py): a kill at any point leaves the
previous ledger, and an interrupted stage never looks finished.

A stage's folder, when it has one, belongs to the hash its entry names. Before the stage runs, a
folder left by another hash, by a finished run whose outputs went missing, or by no recorded run
at all is emptied; one left by an interrupted run of the same hash is kept for the stage to
resume in.

The main job keeps `<out>/stages.json`, the curriculum `<out>/curriculum.json`; both files are
`{<header fields>, "stages": {name: entry}}`.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from engine.config import config_hash
from engine.publish import publish_text

RUNNING, DONE = "running", "done"


class StageLedger:
    """The stages of one output folder, read from and published to `path`."""

    def __init__(self, path: str | Path, header: dict[str, Any] | None = None, job: str = ""):
        self.path = Path(path)
        self.job = job or self.path.stem  # the prefix of its log lines ([demo] pism: done earlier ...)
        data = json.loads(self.path.read_text()) if self.path.is_file() else {}
        if "stages" not in data:  # the main job's first ledgers held the stages at the top level
            data = {"stages": data}
        self.stages: dict[str, dict] = data["stages"]
        self.header = dict(header) if header is not None else {k: v for k, v in data.items() if k != "stages"}

    def finished(self, name: str, digest: str, outputs: Iterable[str | Path] = ()) -> dict | None:
        """The entry of `name` when it finished for `digest` and its `outputs` are all still there."""
        entry = self.stages.get(name)
        if entry is None or entry.get("hash") != digest or entry.get("state", DONE) != DONE:  # older entries: finished ones only
            return None
        return entry if all(Path(p).exists() for p in outputs) else None

    def start(self, name: str, digest: str, folder: str | Path | None = None) -> None:
        """Record `name` as running for `digest`, after emptying a `folder` that is not an interrupted run of it."""
        entry = self.stages.get(name) or {}
        resumable = entry.get("hash") == digest and entry.get("state") == RUNNING
        if folder is not None and Path(folder).exists() and not resumable:
            shutil.rmtree(folder)
        self.stages[name] = {"hash": digest, "state": RUNNING, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self.save()

    def finish(self, name: str, digest: str, record: dict[str, Any]) -> dict:
        """Record `name` as done for `digest` with `record`; returns the entry as the file holds it."""
        entry = json.loads(json.dumps({**record, "hash": digest, "state": DONE}, default=str))
        self.stages[name] = entry
        self.save()
        return entry

    def forget(self, names: Iterable[str]) -> None:
        """Drop entries (stages that must run again, or that the job no longer has)."""
        for name in names:
            self.stages.pop(name, None)
        self.save()

    def run(self, name: str, key: Any, fn: Callable[[], dict], folder: str | Path | None = None) -> dict:
        """`fn()`'s result, or the recorded one when `name` finished earlier with the same `key`
        (any JSON-able identity of its config and inputs)."""
        digest = config_hash({"key": key})
        done = self.finished(name, digest)
        if done is not None:
            print(f"[{self.job}] {name}: done earlier (same config and inputs), skipped", file=sys.stderr, flush=True)
            return done["result"]
        changed = name in self.stages and self.stages[name].get("hash") != digest
        print(f"[{self.job}] {name}" + (": config or inputs changed since it ran, redone" if changed else " ..."),
              file=sys.stderr, flush=True)
        self.start(name, digest, folder)
        started = time.time()
        result = fn()
        return self.finish(name, digest, {"result": result, "wall_s": round(time.time() - started, 1)})["result"]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        publish_text(self.path, json.dumps({**self.header, "stages": self.stages}, indent=2, default=str) + "\n")
