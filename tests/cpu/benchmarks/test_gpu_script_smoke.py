"""The prepared GPU check (benchmarks/gpu/run.sh) runs every part on CPU with --cpu-smoke, and
benchmarks/cmab.py's allocator measure counts the bytes tensors hold at their peak, not what the
process maps (the measure behind cmab.json's peak_mem_ratio_alloc)."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[3]


def _bench_cmab():
    sys.path.insert(0, str(REPO / "benchmarks"))  # benchmarks/cmab.py imports its sibling common.py
    spec = importlib.util.spec_from_file_location("gradus_bench_cmab", REPO / "benchmarks" / "cmab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cpu_alloc_peak_is_the_most_tensor_bytes_alive_at_once():
    cmab = _bench_cmab()
    before = torch.empty(4 << 20, dtype=torch.uint8)
    with cmab.AllocPeak("cpu") as mem:
        del before  # freed inside, allocated before: must not lower the count of what the block allocates
        a = torch.empty(1 << 20, dtype=torch.uint8)
        b = torch.empty(2 << 20, dtype=torch.uint8)
        del a
        c = torch.empty(1 << 20, dtype=torch.uint8)  # 3 MiB alive again, never 4
    assert mem.extra == 3 << 20
    assert b.numel() + c.numel() == 3 << 20


@pytest.mark.slow
def test_gpu_script_cpu_smoke_runs_every_part(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu" / "run.sh"), "--cpu-smoke", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ, "PYTHON": sys.executable}, timeout=1700)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = json.loads(out.read_text())
    assert record["cpu_smoke"] is True
    parts = record["parts"]
    assert set(parts) == {"seeded_sampling", "cmab_bf16", "cmab_p4", "p3_hf"}
    assert not [name for name, part in parts.items() if "error" in part]

    seeded = parts["seeded_sampling"]  # two engines batching differently, same seeded draws; the draws really are random
    assert seeded["batch_sizes"][0] != seeded["batch_sizes"][1]
    assert seeded["identical"] and seeded["distinct_texts"] > 1

    p3 = parts["p3_hf"]  # every arm judged the same draws with the same outcomes
    assert p3["same_outcomes"] == {"seed_concurrency": True, "equal_concurrency": True} and p3["errors"] == 0
    gens = p3["generations"]
    assert gens["engine_path"] == gens["reference_client_seed_concurrency"] == gens["reference_client_equal_concurrency"] > 0
    assert 0 < gens["engine_path_adaptive"] <= gens["engine_path"]

    p4 = parts["cmab_p4"]  # eager holds more than lean; the allocator sees no start-up, so cold == warm
    for key, ratio in p4["peak_mem_ratio_alloc"].items():
        assert ratio["cold"] > 1 and ratio["warm"] > 1
        for impl, peaks in p4["alloc"]["extra_peak_bytes"][key].items():
            assert peaks["cold"] > 0 and abs(peaks["cold"] - peaks["warm"]) <= 0.1 * peaks["warm"], impl
        assert p4["alloc"]["max_abs_err"][key] <= 1e-4

    for key, agreement in parts["cmab_bf16"].items():  # bf16 rounding (2^-8 per value) averages out in rho-bar
        assert agreement["max_rel_err"]["lean_vs_eager_bf16"] < 1e-2, key
