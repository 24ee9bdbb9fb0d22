"""The `gradus` console script: recipes, configs, overrides, clear errors."""
import subprocess
import sys
from pathlib import Path

import yaml

from engine.cli import RECIPES, main

REPO = Path(__file__).resolve().parents[3]


def test_every_recipe_default_config_loads(capsys):
    for name, recipe in RECIPES.items():
        assert main([*name.split(), "--print-config"]) == 0, name
        printed = yaml.safe_load(capsys.readouterr().out)
        assert isinstance(printed, dict) and printed, name


def test_overrides_apply_and_typos_fail(capsys):
    assert main(["model", "warmstart", "--print-config", "sft.epochs=2", "synth.seed=7"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["sft"]["epochs"] == 2 and cfg["synth"]["seed"] == 7
    assert main(["model", "warmstart", "--print-config", "sft.epoch=2"]) == 2
    assert "unknown key" in capsys.readouterr().err


def test_console_script_runs():
    exe = Path(sys.executable).parent / "gradus"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    for word in ("data", "model", "generate", "demo"):
        assert word in out.stdout


def test_config_reference_is_current():
    from engine.config.reference import render

    assert (REPO / "docs" / "configs.md").read_text() == render(), "run: python -m engine.config.reference > docs/configs.md"


def test_build_tiny_writes_a_loadable_model(tmp_path, capsys):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    small = ["synth.train_per_family=4", "synth.val_per_family=1", "synth.test_per_family=1", "model.vocab_size=400", f"cache_dir={tmp_path / 'cache'}"]
    assert main(["model", "build-tiny", *small]) == 2  # --out is required
    assert main(["model", "build-tiny", "--out", str(tmp_path / "m"), *small]) == 0
    assert '"model_id": "gradus/tiny-qwen2.5-vl"' in capsys.readouterr().out
    AutoProcessor.from_pretrained(tmp_path / "m", local_files_only=True)
    assert AutoModelForImageTextToText.from_pretrained(tmp_path / "m", local_files_only=True).config.model_type == "qwen2_5_vl"
