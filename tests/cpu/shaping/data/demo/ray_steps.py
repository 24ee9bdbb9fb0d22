"""Run make_golden's steps with every job forced through Ray Data, in a process of its own.

Used by test_dataplane_on_cpu.py: the steps join the test session's Ray cluster (RAY_ADDRESS) from a
fresh interpreter, so whatever earlier tests did to the pytest process (a fork of it can leave its
Ray gRPC clients dead) cannot stall these jobs. Reads blocks of 16 rows and counts every input as
large, so no job runs in-process; prints the reduced results and the number of Ray Data reads as JSON.
"""
import importlib.util
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(work: Path) -> None:
    from engine.data import stream

    blocks = []
    real = stream.file_blocks
    stream.file_blocks = lambda paths, rows, read=None: blocks.append(paths) or real(paths, 16, read)
    stream._row_count = lambda path: 10**9
    spec = importlib.util.spec_from_file_location("make_golden", HERE / "make_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.run_steps(work)
    print(json.dumps({"ray_data_reads": len(blocks), "result": result}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
