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
