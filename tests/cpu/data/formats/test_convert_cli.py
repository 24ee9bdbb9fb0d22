"""`gradus data convert` through the console script: the split given on the command line reaches samples that name none."""
import json
import subprocess
import sys
from pathlib import Path

from engine.data.shards import read_table

from format_fixtures import write_jsonl


def _convert(tmp_path, image_root, *extra):
    path = write_jsonl(tmp_path / "orsta_like.jsonl", [
        {"images": [str(image_root / "a.png")], "messages": [{"role": "user", "content": "<image>\\nWhat does it say?"}],
         "solution": "\\\\boxed{Google}", "task_type": "ocr"}])
    exe = Path(sys.executable).parent / "gradus"
    return subprocess.run([str(exe), "data", "convert", "--from", "swift", "--input", str(path), "--out", str(tmp_path / "out"),
                           "--image-root", str(image_root), *extra], capture_output=True, text=True, timeout=300)


def test_convert_labels_a_held_out_file_with_its_split(tmp_path, image_root):
    run = _convert(tmp_path, image_root, "--split", "test")
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout)["samples"] == 1
    assert read_table(tmp_path / "out").column("split").to_pylist() == ["test"]


def test_convert_refuses_an_unknown_split(tmp_path, image_root):
    run = _convert(tmp_path, image_root, "--split", "holdout")
    assert run.returncode != 0 and "invalid choice" in run.stderr
