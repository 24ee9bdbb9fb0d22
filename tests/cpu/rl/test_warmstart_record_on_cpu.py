"""warmstart.json names the machine a build ran on: the same config rebuilds the same weights only on
CPUs that run the same kernels with the same torch build, so the record carries the CPU model, the
instruction-set flags kernels are chosen by, torch's version and its dispatch level."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.config import load_config
from engine.synth.corpus import GENERATOR_VERSION
from rl.warmstart import WarmstartConfig, build_machine, cache_key, cpu_info, read_record

REPO = Path(__file__).resolve().parents[3]
CONFIG = REPO / "configs" / "warmstart" / "tiny.yaml"
# A miniature of the default build: same recipe, a few samples, two SFT steps.
SMALL = ["synth.train_per_family=4", "synth.val_per_family=1", "synth.test_per_family=2", "sft.epochs=1", "sft.max_steps=2",
         "sft.batch_size=4", "sft.warmup_steps=1", "sft.log_every=1", "eval.max_per_family=2"]


def test_cpu_info_reads_model_and_flags(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nmodel name\t: Some CPU @ 2.0GHz\nflags\t\t: fpu sse2 avx2 avx512f amx_tile\n\n"
                    "processor\t: 1\nmodel name\t: Some CPU @ 2.0GHz\nflags\t\t: fpu sse2 avx2 avx512f amx_tile\n")
    assert cpu_info(str(path)) == ("Some CPU @ 2.0GHz", {"fpu", "sse2", "avx2", "avx512f", "amx_tile"})


def test_build_machine_keeps_the_kernel_flags_of_this_cpu():
    import torch

    machine = build_machine()
    _, flags = cpu_info()
    assert machine["cpu_flags"] == sorted(f for f in flags if f.startswith(("avx2", "avx512", "amx")))
    assert machine["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability() and machine["torch"] == torch.__version__


def test_default_cache_key_is_unchanged():
    """Where a model was built is recorded, never keyed: the default config still has the key of the
    recorded build (benchmarks/results/warmstart.json), so existing caches stay valid."""
    recorded = json.loads((REPO / "benchmarks" / "results" / "warmstart.json").read_text())
    assert cache_key(load_config(WarmstartConfig, CONFIG)) == recorded["config_hash"]


@pytest.mark.slow
def test_warmstart_record_names_the_build_machine(tmp_path):
    cli = [sys.executable, "-m", "pipelines.cli", "model", "warmstart", "--config", str(CONFIG), f"cache_dir={tmp_path}", *SMALL]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own Ray, as a user's run
    done = subprocess.run(cli, capture_output=True, text=True, timeout=900, cwd=REPO, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    cfg = load_config(WarmstartConfig, CONFIG, [f"cache_dir={tmp_path}", *SMALL])
    model = tmp_path.resolve() / "models" / f"warmstart-{cache_key(cfg)}-g{GENERATOR_VERSION}"  # the machine is not in the key
    assert f'"model_path": "{model}"' in done.stdout  # the folder the command reports (Ray prints logs around it)
    record = read_record(model)
    assert record["build_machine"] == build_machine()
    assert record["build_machine"]["cpu_model"] and record["sft_steps"] == 2
