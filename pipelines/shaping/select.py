"""`gradus select`: named selections and training arms from a difficulty store -> canonical shards.

Output: `selection.json` (spec, seed, config hash, version, counts per domain, split and stratum)
and `selections/<name>/part-*.parquet` per selection: canonical shards whose `meta["difficulty"]`
carries the difficulty tags (the verl export turns it into `extra_info.difficulty`).
"""
from __future__ import annotations

import json
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from engine import __version__
from engine.config import ConfigError, config_hash, to_dict
from engine.data.sample import SPLITS, Sample
from engine.data.shards import merge_sorted_shards, write_shards
from engine.data.stream import IdIndex, Shared, block_tag, run_blocks
from engine.publish import publish_dir
from engine.shaping.select import (PRESETS, ArmSpec, SelectionSpec, Selector, check_disjoint, difficulty_tag, expand)
from engine.shaping.store import MetricSpec, column, metric_of, read_manifest, read_store, store_files

RECORD = "selection.json"


@dataclass
class SelectJobConfig:
    store: str = ""  # difficulty store directory (gradus store build)
    output: str = ""  # output directory: selection.json + selections/<name>/
    metric: str = "pism"  # namespace for selections that name none, for require_scored and for the tags' scorer/bucket/score
    splits: list[str] = field(default_factory=lambda: ["train"])  # only samples of these splits are eligible
    require_scored: bool = True  # eligible only with a verdict of `metric` (bucket or unsolved): errored/unscored samples stay out
    seed: int = 0  # random selections and quota draws derive from (seed, selection name)
    preset: str = ""  # grpo_only | sft_grpo | paper_table4: the paper's paradigms, added before the selections below
    selections: dict[str, SelectionSpec] = field(default_factory=dict)  # name -> spec (kind, metric, pool, exclude, ...; docs/shaping.md)
    arms: dict[str, ArmSpec] = field(default_factory=dict)  # name -> {grpo: selection, sft: selection or ""}
    rows_per_shard: int = 512  # rows per output parquet shard; each selection is published in id order
    rows_per_block: int = 4096  # store rows per Ray Data block, tagged and written at a time (memory bound)
    actors: int = 0  # Ray Data actors writing blocks; 0 = one per CPU of the cluster
    local_below_rows: int = 20000  # a store smaller than this is written in the calling process (same code, no Ray job start-up)

    def validate(self) -> None:
        bad = [s for s in self.splits if s not in SPLITS]
        if bad or not self.splits:
            raise ConfigError(f"splits {self.splits} must be a non-empty subset of {SPLITS}")
        if self.preset and self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; known: {sorted(PRESETS)}")
        if self.require_scored and not self.metric:
            raise ConfigError("require_scored needs metric")
        if self.rows_per_shard < 1 or self.rows_per_block < 1:
            raise ConfigError("rows_per_shard and rows_per_block must be >= 1")
        if self.actors < 0:
            raise ConfigError("actors must be >= 0 (0 = one per CPU)")
        expand(self.preset, self.selections, self.arms)  # names, references and every spec: fail at load time

    def require_paths(self) -> None:
        if not self.store or not self.output:
            raise ConfigError("select: store and output are required (e.g. store=outputs/store output=outputs/select)")


def _universe(index: pd.DataFrame, cfg: SelectJobConfig) -> tuple[pd.DataFrame, dict]:
    """Eligible samples, and how many were left out for which reason."""
    in_split = index["split"].isin(cfg.splits)
    excluded = {"other_splits": int((~in_split).sum())}
    universe = index[in_split]
    if cfg.require_scored:
        stratum = universe[column(cfg.metric, "stratum")]
        for reason in ("error", "unscored"):
            excluded[f"{cfg.metric} {reason}"] = int((stratum == reason).sum())
        universe = universe[~stratum.isin(["error", "unscored"])]
    return universe, excluded


def _write_selections(store: str, resolved: dict[str, pd.Index], out: Path, namespaces: dict[str, MetricSpec], metric: str,
                      cfg: SelectJobConfig) -> None:
    """One streaming pass over the store: every block's members of each selection, tagged and written
    as `<name>/part-<block>-*.parquet` by the worker holding the block (only the ids and one membership
    flag per selection are shared with the workers); then each selection is published in id order, so
    its files read the same whichever worker wrote which block."""
    manifest = read_manifest(store)
    files, read = store_files(store, manifest["columns"])
    members = _membership(resolved)
    blocks = out.parent / ".blocks"
    kwargs = {"members": Shared(members), "namespaces": namespaces, "metric": metric, "out": str(blocks), "rows_per_shard": cfg.rows_per_shard}
    written = dict.fromkeys(resolved, 0)
    for result in run_blocks(files, cfg.rows_per_block, read, _WriteMembers, kwargs, cfg.actors, cfg.local_below_rows):
        for name, rows in zip(result.column("selection").to_pylist(), result.column("rows").to_pylist()):
            written[name] += rows
    for name, count in written.items():
        if count != len(resolved[name]):
            raise RuntimeError(f"selection {name!r}: wrote {count} rows of {len(resolved[name])} selected; the store changed while it was read")
        if count:
            merge_sorted_shards(blocks / name, out / name, rows_per_shard=cfg.rows_per_shard)
        else:
            write_shards([], out / name, rows_per_shard=cfg.rows_per_shard)  # an empty selection still has a schema to read
    shutil.rmtree(blocks, ignore_errors=True)


def _membership(resolved: dict[str, pd.Index]) -> pa.Table:
    """id + one bool column per selection, over every selected id."""
    ids = pd.Index(sorted(set().union(*(set(ix) for ix in resolved.values()))), dtype=object)
    columns = {"id": pa.array(ids, pa.string())}
    for name, ix in resolved.items():
        columns[name] = pa.array(ids.isin(ix))
    return pa.table(columns)


class _WriteMembers:
    """Ray Data actor: writes a block's members of each selection as canonical shards with difficulty tags."""

    def __init__(self, members: Shared, namespaces: dict[str, MetricSpec], metric: str, out: str, rows_per_shard: int):
        self.members = members.get()
        self.index = IdIndex(self.members.column("id"))
        self.names = [n for n in self.members.column_names if n != "id"]
        self.namespaces, self.metric, self.out, self.rows_per_shard = namespaces, metric, Path(out), rows_per_shard

    def __call__(self, block: pa.Table) -> pa.Table:
        block = block.take(pc.sort_indices(block, [("id", "ascending")]))
        positions = self.index.positions(block.column("id"))
        found = positions >= 0
        counts = []
        for name in self.names:
            flags = self.members.column(name).to_numpy(zero_copy_only=False)
            keep = found & flags[np.where(found, positions, 0)]
            rows = block.filter(pa.array(keep)).to_pylist() if keep.any() else []
            if rows:
                write_shards([self._tagged(row, name) for row in rows], self.out / name, rows_per_shard=self.rows_per_shard,
                             prefix=f"part-{block_tag(block.column('id'))}")
            counts.append(len(rows))
        return pa.table({"selection": self.names, "rows": pa.array(counts, pa.int64())})

    def _tagged(self, row: dict, name: str) -> Sample:
        sample = Sample.from_row(row)
        tag = difficulty_tag(row, self.namespaces, self.metric, name)
        if "difficulty" in sample.meta:  # tags the sample arrived with (e.g. a foreign verl file) are kept, not lost
            tag["previous"] = sample.meta["difficulty"]
        sample.meta["difficulty"] = tag
        return sample


def run_select(cfg: SelectJobConfig) -> dict:
    cfg.require_paths()
    started = time.time()
    selections, arms = expand(cfg.preset, cfg.selections, cfg.arms)
    if not selections:
        raise ConfigError("select: nothing to select; set preset (e.g. preset=paper_table4) or selections")
    manifest = read_manifest(cfg.store)
    namespaces = {ns: metric_of(ns) for ns in manifest["sources"]}
    if cfg.metric and cfg.metric not in namespaces:
        raise ConfigError(f"metric {cfg.metric!r} is not in store {cfg.store}; it has {sorted(namespaces)}")
    index_columns = ["id", "domain", "split"] + [column(ns, n) for ns, spec in namespaces.items() for n, _ in spec.columns()]
    index = read_store(cfg.store, columns=index_columns).to_pandas().set_index("id")
    universe, excluded = _universe(index, cfg)
    selector = Selector(universe, namespaces, cfg.metric, cfg.seed, selections)
    resolved = selector.resolve_all()
    check_disjoint(arms, resolved)

    spec = {"selections": {n: to_dict(s) for n, s in selections.items()}, "arms": {n: to_dict(a) for n, a in arms.items()}}
    # What decides the selected ids: the store's content, the eligibility rules, the seed and the spec.
    chash = config_hash({"store": manifest["config_hash"], "metric": cfg.metric, "splits": cfg.splits,
                         "require_scored": cfg.require_scored, "seed": cfg.seed, "spec": spec})
    out = Path(cfg.output)
    if out.exists() and any(out.iterdir()) and not (out / RECORD).exists():
        raise ConfigError(f"{out} exists and holds no earlier selection; choose an empty or new output directory")
    with publish_dir(out, partial=out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}") as tmp:
        _write_selections(cfg.store, resolved, tmp / "selections", namespaces, cfg.metric, cfg)
        counts = {name: selector.summarize(ids) | selector.notes.get(name, {}) | {"path": f"selections/{name}"}
                  for name, ids in resolved.items()}
        record = {
            "store": cfg.store,
            "store_config_hash": manifest["config_hash"],
            "store_sources": {ns: s["provenance"] for ns, s in manifest["sources"].items()},
            "metric": cfg.metric,
            "splits": cfg.splits,
            "require_scored": cfg.require_scored,
            "preset": cfg.preset or None,
            "universe": {"rows": int(len(universe)), "excluded": excluded},
            "spec": spec,
            "selections": counts,
            "arms": {name: {role: {"selection": sel, "path": f"selections/{sel}", "count": counts[sel]["count"]}
                            for role, sel in (("sft", arm.sft), ("grpo", arm.grpo)) if sel} for name, arm in arms.items()},
            "seed": cfg.seed,
            "config_hash": chash,
            "gradus_version": __version__,
        }
        (tmp / RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return record | {"output": str(out), "wall_s": round(time.time() - started, 2)}
