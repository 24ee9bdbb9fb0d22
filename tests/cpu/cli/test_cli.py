"""The `gradus` console script: recipes, configs, overrides, clear errors."""
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines.cli import main
from pipelines.registry import RECIPES

REPO = Path(__file__).resolve().parents[3]


def test_every_recipe_default_config_loads(capsys):
    for name, recipe in RECIPES.items():
        assert main([*name.split(), "--print-config"]) == 0, name
        printed = yaml.safe_load(capsys.readouterr().out)
        assert isinstance(printed, dict) and printed, name



def test_every_recipe_runs_as_run_cfg():
    """The registry is the one table: every entry's config class and run function resolve, and the
    run function takes the config alone (flags are config fields, not extra arguments)."""
    import dataclasses
    import inspect

    for name, recipe in RECIPES.items():
        params = [p for p in inspect.signature(recipe.runner()).parameters.values() if p.default is inspect.Parameter.empty]
        assert len(params) == 1, (name, params)
        fields = {f.name for f in dataclasses.fields(recipe.config_cls())}
        for flag in recipe.flags:
            assert flag.field.split(".")[0] in fields, (name, flag.option)


def test_flags_are_sugar_for_config_fields(capsys, tmp_path):
    assert main(["train", "grpo", "--backend", "verl", "--dry-run", "--print-config"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["backend"] == "verl" and cfg["dry_run"] is True
    assert main(["train", "grpo", "--print-config", "backend=verl", "dry_run=true"]) == 0  # the same run, without flags
    assert yaml.safe_load(capsys.readouterr().out) == cfg
    assert main(["train", "grpo", "--backend", "trl", "--print-config", "backend=verl"]) == 0  # a flag wins over an override
    assert yaml.safe_load(capsys.readouterr().out)["backend"] == "trl"
    assert main(["data", "synth", "--out", "123", "--print-config"]) == 0  # a value stays text, whatever it looks like
    assert yaml.safe_load(capsys.readouterr().out)["out"] == "123"
    assert main(["train", "curriculum", "--dry-run", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["dry_run"] is True

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
    from pipelines.reference import render

    assert (REPO / "docs" / "configs.md").read_text() == render(), "run: python -m pipelines.reference > docs/configs.md"


def test_build_tiny_writes_a_loadable_model(tmp_path, capsys):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    small = ["synth.train_per_family=4", "synth.val_per_family=1", "synth.test_per_family=1", "model.vocab_size=400", f"cache_dir={tmp_path / 'cache'}"]
    assert main(["model", "build-tiny", *small]) == 2  # --out is required
    assert main(["model", "build-tiny", "--out", str(tmp_path / "m"), *small]) == 0
    assert '"model_id": "gradus/tiny-qwen2.5-vl"' in capsys.readouterr().out
    AutoProcessor.from_pretrained(tmp_path / "m", local_files_only=True)
    assert AutoModelForImageTextToText.from_pretrained(tmp_path / "m", local_files_only=True).config.model_type == "qwen2_5_vl"


def _commands(parser, words=()):
    """(command words, parser) of every subcommand below `parser`, depth first."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*words, name), sub
                yield from _commands(sub, (*words, name))


def test_every_subcommand_help_says_what_it_does_its_choices_and_defaults():
    import argparse

    from pipelines.cli import build_parser

    commands = list(_commands(build_parser()))
    assert len(commands) >= 30  # every recipe, group, data and jobs command
    for words, parser in commands:
        text = parser.format_help()
        assert parser.description and " ".join(parser.description.split()) in " ".join(text.split()), words
        formatter = parser.formatter_class(parser.prog)
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, (words, action.dest)
            for choice in action.choices or ():
                assert choice in text, (words, action.dest, choice)  # a group's commands and an option's values
            if action.option_strings and action.default not in (None, False, "", [], argparse.SUPPRESS):
                assert "default" in formatter._get_help_string(action), (words, action.dest)


def test_convert_and_export_help_describe_every_format_and_the_image_roots():
    from pipelines.cli import build_parser
    from pipelines.registry import CONVERT_FORMATS, EXPORT_FORMATS
    from engine.data.formats import READERS, WRITERS

    assert set(CONVERT_FORMATS) == set(READERS) and set(EXPORT_FORMATS) == set(WRITERS)
    helps = {words: p.format_help() for words, p in _commands(build_parser())}
    for words, formats in (("data", "convert"), CONVERT_FORMATS), (("data", "export"), EXPORT_FORMATS):
        lines = [" ".join(line.split()) for line in helps[words].splitlines()]
        for name, text in formats.items():
            assert f"{name} {text}" in lines, (words, name)  # one line per format: its name, then what it is
    convert = " ".join(helps[("data", "convert")].split())
    assert "A relative image path is looked up under each --image-root in turn" in convert
    assert "With no --image-root the input's own directory is the only root" in convert


def test_convert_refuses_an_unknown_format_naming_the_known_ones(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "convert", "--from", "no_such_format", "--input", "x", "--out", "y"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'no_such_format'" in err and "vtriune" in err
