"""`gradus data convert|export|pass-rates` are registry recipes: their flags are sugar for config fields,
so `key=value` overrides, `--config FILE` and `gradus submit` reach them as they reach every recipe.
Fast: the exports below are tiny inputs under `local_below_rows`, written in this process (no Ray)."""
import json

import pyarrow.parquet as pq
import pytest
import yaml

from engine.config import ConfigError
from engine.data.sample import Message, Sample
from engine.data.shards import write_shards
from pipelines.cli import main
from pipelines.registry import RECIPES


@pytest.fixture
def shards(tmp_path):
    rows = [Sample(id=f"s-{i}", images=[], messages=[Message("user", f"What is {i}+1?")], answer=str(i + 1), task="arith",
                   verifier="exact", domain="math", split="train") for i in range(3)]
    write_shards(rows, tmp_path / "in")
    return tmp_path / "in"


def test_the_data_commands_are_registry_recipes():
    for name in ("data convert", "data export", "data pass-rates"):
        assert name in RECIPES, name
    options = {name: {f.option: f.field for f in RECIPES[name].flags} for name in ("data convert", "data export", "data pass-rates")}
    assert options["data convert"] == {"--from": "format", "--input": "input", "--out": "out", "--image-root": "images.roots", "--split": "split"}
    assert options["data export"] == {"--to": "format", "--input": "input", "--out": "out", "--image-root": "image_roots",
                                      "--rows-per-block": "rows_per_block", "--actors": "actors", "--local-below-rows": "local_below_rows"}
    assert set(options["data pass-rates"]) == {"--rollouts", "--output", "--data", "--run", "--model-id", "--config-hash", "--seed", "--stage"}


def test_flags_set_typed_config_fields(capsys):
    assert main(["data", "export", "--to", "swift", "--input", "a", "--out", "b", "--image-root", "r1", "--image-root", "r2",
                 "--rows-per-block", "8", "--actors", "2", "--print-config"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert (cfg["format"], cfg["input"], cfg["out"], cfg["image_roots"], cfg["rows_per_block"], cfg["actors"]) == ("swift", "a", "b", ["r1", "r2"], 8, 2)
    assert main(["data", "convert", "--from", "verl", "--input", "a", "--out", "b", "--image-root", "r", "--split", "test", "--print-config"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert (cfg["format"], cfg["images"]["roots"], cfg["split"]) == ("verl", ["r"], "test")
    assert main(["data", "pass-rates", "--rollouts", "d", "--output", "p.parquet", "--seed", "3", "--run", "r", "--print-config"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert (cfg["rollouts"], cfg["output"], cfg["seed"], cfg["run_dir"]) == ("d", "p.parquet", 3, "r")
    assert main(["data", "export", "actors=3", "local_below_rows=5", "--actors", "0", "--local-below-rows", "0", "--print-config"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert (cfg["actors"], cfg["local_below_rows"]) == (0, 0)  # a flag given as 0 still wins over the override


def test_export_takes_overrides_and_a_config_file(shards, tmp_path, capsys):
    # the flags users type, unchanged
    assert main(["data", "export", "--to", "verl", "--input", str(shards), "--out", str(tmp_path / "a.parquet")]) == 0
    assert json.loads(capsys.readouterr().out)["written"] == [str(tmp_path / "a.parquet")]
    assert pq.read_table(tmp_path / "a.parquet").num_rows == 3
    # the same command as key=value overrides only
    assert main(["data", "export", "format=swift", f"input={shards}", f"out={tmp_path / 'b.jsonl'}", "rows_per_block=1"]) == 0
    assert json.loads(capsys.readouterr().out)["written"] == [str(tmp_path / "b.jsonl")]
    assert len((tmp_path / "b.jsonl").read_text().splitlines()) == 3
    # a config file, an override on top of it, and a flag winning over both
    config = tmp_path / "export.yaml"
    config.write_text(yaml.safe_dump({"format": "verl", "input": str(shards), "out": str(tmp_path / "c.parquet")}))
    assert main(["data", "export", "--config", str(config)]) == 0
    assert json.loads(capsys.readouterr().out)["written"] == [str(tmp_path / "c.parquet")]
    assert main(["data", "export", "--config", str(config), "--out", str(tmp_path / "e.parquet"), f"out={tmp_path / 'd.parquet'}"]) == 0
    assert json.loads(capsys.readouterr().out)["written"] == [str(tmp_path / "e.parquet")]
    assert not (tmp_path / "d.parquet").exists()


def test_missing_or_bad_fields_are_clear_errors(shards, tmp_path, capsys):
    assert main(["data", "export", "--input", str(shards), "--out", str(tmp_path / "x.parquet")]) == 2
    assert "--to" in capsys.readouterr().err  # says which flag (or field) is missing
    assert main(["data", "export", "format=parquet", f"input={shards}", f"out={tmp_path / 'x.parquet'}"]) == 2
    err = capsys.readouterr().err
    assert "parquet" in err and "llamafactory" in err  # names the known formats
    assert main(["data", "export", "--to", "verl", f"input={shards}", f"out={tmp_path / 'x.parquet'}", "rows_per_block=0"]) == 2
    assert "rows_per_block" in capsys.readouterr().err
    assert main(["data", "convert", "--from", "swift", "--out", str(tmp_path / "o")]) == 2
    assert "--input" in capsys.readouterr().err
    assert main(["data", "pass-rates", "--rollouts", str(tmp_path)]) == 2
    assert "--output" in capsys.readouterr().err
    assert not (tmp_path / "x.parquet").exists()


def test_submit_checks_the_paths_before_the_cluster():
    from pipelines.submit import entrypoint, submit

    with pytest.raises(ConfigError, match="--input"):
        submit("data export", None, ["format=verl", "out=x.parquet"], addr="http://127.0.0.1:1")  # refused before any connection
    assert entrypoint("data export") == "python -m pipelines.cli data export --config env:GRADUS_JOB_CONFIG"
