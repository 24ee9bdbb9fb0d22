"""Store build, select and export as Ray Data jobs give what the single-process implementation gave.

On the demo's data (its 240-sample pool with the PISM and CMAB scores of one `make demo`;
data/demo/), the same steps are run as Ray Data jobs on the shared Ray session (every size
threshold set so nothing runs in-process) and in-process, and compared with golden.json, which the
single-process implementation recorded (data/demo/make_golden.py says how): store rows and manifest
counts, ids and rows per selection, exported records per format.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


HERE = Path(__file__).resolve().parent
GOLDEN = json.loads((HERE / "data" / "demo" / "golden.json").read_text())


def _load_steps():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_golden", HERE / "data" / "demo" / "make_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.run_steps


def _compare(result: dict) -> None:
    for key in ("store", "store_extended"):
        assert result[key]["summary"] == GOLDEN[key]["summary"], key
        assert result[key]["rows"] == GOLDEN[key]["rows"], key
    assert {n: sorted(r) for n, r in result["select"]["rows"].items()} == {n: sorted(r) for n, r in GOLDEN["select"]["rows"].items()}
    assert result["select"]["rows"] == GOLDEN["select"]["rows"]
    assert result["select"]["record"] == GOLDEN["select"]["record"]
    for fmt, rows in GOLDEN["export"].items():
        assert result["export"][fmt] == rows, fmt


@pytest.mark.slow
def test_ray_data_jobs_match_the_single_process_results(ray_session, tmp_path):
    """Blocks of 16 rows (the 240 samples span many blocks; exports keep them unbundled, so their parts must
    append back in the shards' order), every input counted as large: no job runs in-process. The steps run
    in a fresh process joined to the session's cluster (data/demo/ray_steps.py says why)."""
    env = {**os.environ, "RAY_ADDRESS": ray_session.get_runtime_context().gcs_address}
    done = subprocess.run([sys.executable, str(HERE / "data" / "demo" / "ray_steps.py"), str(tmp_path)], capture_output=True,
                          text=True, timeout=900, env=env, cwd=HERE.parents[2])
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["ray_data_reads"] == 3 + 1 + 2 * 3  # 3 store builds, 1 select, 3 exports of 2 passes each: all through Ray Data
    _compare(out["result"])
    _assert_published_in_id_order(tmp_path / "select" / "selections", rows_per_shard=64)


def _assert_published_in_id_order(selections: Path, rows_per_shard: int) -> None:
    """Readers (the trainers, exports) take a selection's files in name order: written by many block
    workers, a selection must still read as the single-process job wrote it, ids ascending in full shards."""
    import pyarrow.parquet as pq

    from engine.data.shards import shard_paths

    for folder in sorted(p for p in selections.iterdir() if p.is_dir()):
        files = shard_paths(folder)
        sizes = [pq.ParquetFile(f).metadata.num_rows for f in files]
        ids = [i for f in files for i in pq.read_table(f, columns=["id"]).column("id").to_pylist()]
        assert [f.name for f in files] == [f"part-{n:05d}.parquet" for n in range(len(files))], folder.name
        assert all(n == rows_per_shard for n in sizes[:-1]) and 0 < sizes[-1] <= rows_per_shard, (folder.name, sizes)
        assert ids == sorted(ids), folder.name
    assert not (selections.parent / ".blocks").exists()


def test_in_process_runs_of_small_inputs_match_too(tmp_path):
    _compare(_load_steps()(tmp_path))
    _assert_published_in_id_order(tmp_path / "select" / "selections", rows_per_shard=64)


@pytest.mark.parametrize("rows", [1, 7, 100000])
def test_block_size_does_not_change_the_store(tmp_path, rows):
    from engine.shaping.store import ScoreSource, build_store

    from tests.cpu.shaping.dataplane_rows import store_rows

    data = HERE / "data" / "demo"
    build_store(tmp_path / "s", {"pism": ScoreSource(str(data / "pism")), "cmab": ScoreSource(str(data / "cmab"))},
                samples=str(data / "samples"), partition_by=["domain", "pism.stratum"], rows_per_file=rows)
    assert store_rows(tmp_path / "s") == GOLDEN["store"]["rows"]
