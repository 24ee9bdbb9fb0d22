"""`gradus demo` (what `make demo` runs) end to end through the console script, at a small size."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_runs_end_to_end(warm_model, tmp_path):
    # warm_model makes sure the cached embedded default exists, so this measures the demo path only
    exe = Path(sys.executable).parent / "gradus"
    out = subprocess.run(
        [str(exe), "demo", f"out_dir={tmp_path}", "limit=12", "actors.batch_size=6"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    gen = summary["generation"]
    assert gen["rows"] == 12 and gen["errors"] == {} and gen["backend"] == "vllm"
    assert summary["model_path"] == str(warm_model)
    assert isinstance(summary["warmstart"]["accepted"], bool)  # the band itself is benchmarked, not tested
    assert set(gen["per_task"]) <= {"counting", "color", "grounding", "ocr", "chart", "spatial"}
    # scoring on the same slice: PISM on vLLM, then CMAB on PISM's verified answers (no new generations)
    pism, cmab = summary["pism"], summary["cmab"]
    assert pism["rows"] == 12 and pism["scored"] == 12 and Path(pism["report"]).exists()
    assert cmab["rows"] == 12 and cmab["generations"] == 0 and set(cmab["response_sources"]) == {"pism"}
    assert cmab["scored"] + cmab["unsolved"] == 12 and Path(cmab["report"]).exists()
    assert cmab["unsolved"] == pism["buckets"].get("unsolved", 0)  # the same samples PISM found no answer for
