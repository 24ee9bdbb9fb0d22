"""What the pipeline tests share: a small test-split slice spread over the families, written as
small parquet files (small blocks: results are written while the job runs), and a driver killed
with -9 mid-run, then rerun with the same command."""
import os
import signal
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from engine.data.sample import SAMPLE_SCHEMA
from engine.data.shards import shard_paths


def spread_rows(corpus: Path, n: int = 12) -> list[dict]:
    """Every 50th test row: n rows spread over the task families (mutable copies for hostile edits)."""
    rows = []
    for path in shard_paths(corpus / "test"):
        rows += pq.read_table(path).to_pylist()
    return rows[::50][:n]


def write_small_files(rows: list[dict], folder: Path, rows_per_file: int) -> Path:
    for i in range(0, len(rows), rows_per_file):
        pq.write_table(pa.Table.from_pylist(rows[i : i + rows_per_file], schema=SAMPLE_SCHEMA), folder / f"part-{i:05d}.parquet")
    return folder


def kill_mid_run_then_rerun(cmd: list[str], out: Path, env: dict, poll_s: float = 0.05) -> None:
    """Start `cmd`, SIGKILL its process group once the first part is on disk, check it had not
    finished, then run the same command to completion."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while time.time() < deadline and not list((out / "parts").glob("*.parquet")):
        time.sleep(poll_s)
    os.killpg(proc.pid, signal.SIGKILL)  # kill -9 of the driver, mid-write
    proc.wait()
    assert not (out / "scores.parquet").exists(), "the run finished before it could be killed"
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=900)
