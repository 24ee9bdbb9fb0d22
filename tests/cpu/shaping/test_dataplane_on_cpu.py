"""Store build, select and export as Ray Data jobs give what the single-process implementation gave.

On the demo's data (its 240-sample pool with the PISM and CMAB scores of one `make demo`;
data/demo/), the same steps are run as Ray Data jobs on the shared Ray session (every size
threshold set so nothing runs in-process) and in-process, and compared with golden.json, which the
single-process implementation recorded (data/demo/make_golden.py says how): store rows and manifest
counts, ids and rows per selection, exported records per format.
"""
import json
from pathlib import Path

import pytest

from engine.data import stream

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
def test_ray_data_jobs_match_the_single_process_results(ray_session, tmp_path, monkeypatch):
    blocks = []
    real = stream.file_blocks
    # read in blocks of 16 rows: the 240 samples span many blocks (exports keep them unbundled, so
    # their parts must append back in the shards' order)
    monkeypatch.setattr(stream, "file_blocks", lambda paths, rows, read=None: blocks.append(paths) or real(paths, 16, read))
    monkeypatch.setattr(stream, "_row_count", lambda path: 10**9)  # every input counts as large: no job runs in-process
    result = _load_steps()(tmp_path)
    assert len(blocks) == 3 + 1 + 2 * 3  # 3 store builds, 1 select, 3 exports of 2 passes each: all went through Ray Data
    _compare(result)


def test_in_process_runs_of_small_inputs_match_too(tmp_path):
    _compare(_load_steps()(tmp_path))


@pytest.mark.parametrize("rows", [1, 7, 100000])
def test_block_size_does_not_change_the_store(tmp_path, rows):
    from engine.shaping.store import ScoreSource, build_store

    from tests.cpu.shaping.dataplane_rows import store_rows

    data = HERE / "data" / "demo"
    build_store(tmp_path / "s", {"pism": ScoreSource(str(data / "pism")), "cmab": ScoreSource(str(data / "cmab"))},
                samples=str(data / "samples"), partition_by=["domain", "pism.stratum"], rows_per_file=rows)
    assert store_rows(tmp_path / "s") == GOLDEN["store"]["rows"]
