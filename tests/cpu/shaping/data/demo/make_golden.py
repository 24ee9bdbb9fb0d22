"""Record golden.json: the store, selections and exports the single-process implementation made of this data.

This folder holds the demo's data (its 240-sample pool, and the PISM and CMAB scores of one
`make demo`, cut to the columns the store keeps). golden.json was written by running this script
with the tree before the Ray Data path (git archive of that commit) first on sys.path:

    python tests/cpu/shaping/data/demo/make_golden.py --code /tmp/old-tree

test_dataplane_on_cpu.py runs the same steps (`run_steps`) with today's code and compares.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXPORT_FORMATS = ("verl", "swift", "llamafactory")


def rows_module():
    spec = importlib.util.spec_from_file_location("dataplane_rows", HERE.parents[1] / "dataplane_rows.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_steps(work: Path) -> dict:
    """Store (pism + cmab at once; pism, then cmab added to the store), selections, exports -> reduced results."""
    from engine.shaping.store import ScoreSource, build_store
    from pipelines.cli import main
    from pipelines.shaping.select import SelectJobConfig, run_select

    rows = rows_module()
    sources = {"pism": ScoreSource(str(HERE / "pism")), "cmab": ScoreSource(str(HERE / "cmab"))}
    partition_by = ["domain", "pism.stratum"]
    build_store(work / "store", sources, samples=str(HERE / "samples"), partition_by=partition_by)
    build_store(work / "store2", {"pism": sources["pism"]}, samples=str(HERE / "samples"), partition_by=partition_by)
    build_store(work / "store2", {"cmab": sources["cmab"]})
    cfg = SelectJobConfig(store=str(work / "store"), output=str(work / "select"), preset="grpo_only", seed=0,
                          selections={"mid": _spec(kind="buckets", buckets=["mid"]), "hard": _spec(kind="buckets", buckets=["hard"]),
                                      "low_rho": _spec(kind="range", metric="cmab", high=0.5),
                                      "rand_quota": _spec(kind="random", size=60, domain_quota={"reasoning": 7})},
                          rows_per_shard=64)
    cfg.validate()
    run_select(cfg)
    exports = {}
    for fmt in EXPORT_FORMATS:
        out = work / f"export-{fmt}"
        code = main(["data", "export", "--to", fmt, "--input", str(work / "select" / "selections" / "fullset"), "--out", str(out)])
        assert code == 0, fmt
        exports[fmt] = rows.export_rows(out)
    return {
        "store": {"rows": rows.store_rows(work / "store"), "summary": rows.store_summary(work / "store")},
        "store_extended": {"rows": rows.store_rows(work / "store2"), "summary": rows.store_summary(work / "store2")},
        "select": {"rows": rows.selection_rows(work / "select"), "record": rows.selection_record(work / "select")},
        "export": exports,
    }


def _spec(**kw):
    from engine.shaping.select import SelectionSpec

    return SelectionSpec(**kw)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", required=True, help="root of the tree whose engine/ and pipelines/ make the reference")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(args.code).resolve()))
    with tempfile.TemporaryDirectory() as tmp:
        result = run_steps(Path(tmp))
    (HERE / "golden.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print({k: len(v["rows"]) if "rows" in v else {f: len(r) for f, r in v.items()} for k, v in result.items()})
