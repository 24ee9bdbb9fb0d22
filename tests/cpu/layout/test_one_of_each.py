"""One paths module, one atomic publish helper, one source resolver (issue 20).

- engine/publish.py: a folder or file is replaced whole or not at all; a failed write leaves the
  previous output and no partial; a partial left by a killed write never reaches the output;
- engine/paths.py: repo-relative names and the cache root resolve as the docs say;
- no module of engine/, rl/ or pipelines/ renames temporaries into place or computes the repo root
  itself (both go through the helpers above);
- SFT and GRPO configs expose their training data reference under one name (rl/sources.py TrainInputs);
- engine/ledger.py: one stage ledger for the main job and the curriculum: a finished stage is skipped,
  one whose hash changed is redone in an emptied folder, an interrupted one resumes in its own;
- rl/grpo/verl_run.py: `gradus train grpo` and the curriculum run verl and merge through one function
  and decide "uploaded" once;
- the generation interface does not import its backends, engine/data does not import engine/model.
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from engine.paths import CONFIG_DIR, REPO_ROOT, cache_root, repo_path
from engine.publish import partial_path, publish_dir, publish_file, publish_text, remove_partials

REPO = Path(__file__).resolve().parents[3]
LAYERS = ("engine", "rl", "pipelines")


def test_publish_dir_replaces_the_folder_whole(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "old.bin").write_text("old")
    partial_path(out).mkdir()
    (partial_path(out) / "torn.bin").write_text("left by a killed write")
    with publish_dir(out) as tmp:
        assert not tmp.exists()  # the stale partial is gone before the body writes
        tmp.mkdir()
        (tmp / "new.bin").write_text("new")
        assert (out / "old.bin").read_text() == "old"  # readers still see the old folder
    assert sorted(p.name for p in out.iterdir()) == ["new.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no partial, no moved-aside old folder


def test_publish_dir_failure_keeps_the_old_folder(tmp_path):
    out = tmp_path / "shards"
    out.mkdir()
    (out / "a.parquet").write_text("a")
    with pytest.raises(RuntimeError, match="boom"):
        with publish_dir(out, partial=tmp_path / ".shards.tmp-1") as tmp:
            tmp.mkdir()
            (tmp / "b.parquet").write_text("b")
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shards"]
    assert sorted(p.name for p in out.iterdir()) == ["a.parquet"]


def test_publish_file_replaces_or_keeps(tmp_path):
    path = tmp_path / "state.json"
    publish_text(path, "one")
    publish_text(path, "two")
    assert path.read_text() == "two"

    def torn(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        publish_file(path, torn)
    assert path.read_text() == "two" and sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
    partial_path(tmp_path / "part-1.parquet").write_text("torn")
    remove_partials(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_repo_paths_and_cache_root(tmp_path, monkeypatch):
    assert REPO_ROOT == REPO and CONFIG_DIR == REPO / "configs"
    monkeypatch.chdir(tmp_path)
    assert repo_path("configs/warmstart/tiny.yaml") == REPO / "configs" / "warmstart" / "tiny.yaml"
    (tmp_path / "configs").mkdir()  # a name that exists where the user is wins over the repo's
    assert repo_path("configs") == tmp_path / "configs"
    monkeypatch.setenv("GRADUS_CACHE", str(tmp_path / "env-cache"))
    assert cache_root() == tmp_path / "env-cache"
    assert cache_root(str(tmp_path / "cfg-cache")) == tmp_path / "cfg-cache"  # a config's cache_dir comes first
    monkeypatch.delenv("GRADUS_CACHE")
    assert cache_root() == Path("~/.cache/gradus").expanduser().resolve()


def _modules():
    for layer in LAYERS:
        for path in sorted((REPO / layer).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            yield rel, ast.parse(path.read_text())


def _up_from_file(node: ast.AST) -> int | None:
    """How many folders `Path(__file__).resolve().parent...` / `.parents[k]` climbs (None: another expression)."""
    up = 0
    while isinstance(node, ast.Attribute) and node.attr == "parent":
        up, node = up + 1, node.value
    if up == 0 and isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "parents" \
            and isinstance(node.slice, ast.Constant):
        up, node = node.slice.value + 1, node.value.value
    return up if up and ast.unparse(node) in ("Path(__file__).resolve()", "Path(__file__)") else None


def test_every_publish_and_repo_root_goes_through_the_helpers():
    renames, roots = [], []
    for rel, tree in _modules():
        for node in ast.walk(tree):
            if rel != "engine/publish.py" and isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                f = node.func
                path_replace = f.attr == "replace" and len(node.args) == 1 and not node.keywords  # str.replace takes two
                if f.attr == "rename" or path_replace or (f.attr == "replace" and isinstance(f.value, ast.Name) and f.value.id == "os"):
                    renames.append(f"{rel}:{node.lineno}")
            if rel != "engine/paths.py" and _up_from_file(node) is not None and (REPO / rel).parents[_up_from_file(node) - 1] == REPO:
                roots.append(f"{rel}:{node.lineno}")
    assert not renames, f"write-then-rename outside engine/publish.py: {renames}"
    assert not roots, f"repo root computed outside engine/paths.py: {roots}"


def test_sft_and_grpo_configs_share_the_training_data_field():
    from engine.config import to_dict
    from rl.curriculum.data import resolve_stage_data
    from rl.grpo.config import GrpoJobConfig
    from rl.sft.config import SFTConfig

    for cfg, field in ((SFTConfig(train_data="a"), lambda c: c.train_data), (GrpoJobConfig(), lambda c: c.data.train)):
        cfg.train_source = "shards/train?tasks=color"
        assert field(cfg) == cfg.train_source == "shards/train?tasks=color"
        assert "train_source" not in to_dict(cfg)  # an accessor, not a config key
        assert resolve_stage_data(cfg.train_source, REPO, seed=0) == cfg.train_source  # only reformulate: is made here


# ----- one stage ledger (engine/ledger.py): the main job's stages.json and the curriculum's curriculum.json -----

def _stage(folder: Path, marker: str):
    def fn() -> dict:
        folder.mkdir(exist_ok=True)
        (folder / marker).write_text(marker)
        return {"files": sorted(p.name for p in folder.iterdir())}
    return fn


def test_ledger_skips_a_finished_stage_and_redoes_one_whose_hash_changed(tmp_path):
    from engine.ledger import StageLedger

    path, stage = tmp_path / "stages.json", tmp_path / "pism"
    first = StageLedger(path).run("pism", {"cfg": 1}, _stage(stage, "old"), folder=stage)
    assert first == {"files": ["old"]}
    again = StageLedger(path).run("pism", {"cfg": 1}, _stage(stage, "never"), folder=stage)
    assert again == first and not (stage / "never").exists()  # same key: the recorded result, nothing runs
    # another config: the old run's files are gone before the stage runs again (a scoring stage refuses
    # a folder that holds a run of another config)
    redone = StageLedger(path).run("pism", {"cfg": 2}, _stage(stage, "new"), folder=stage)
    assert redone == {"files": ["new"]}
    entry = json.loads(path.read_text())["stages"]["pism"]
    assert entry["result"] == redone and entry["state"] == "done"


def test_ledger_keeps_an_interrupted_run_of_the_same_hash_only(tmp_path):
    from engine.ledger import StageLedger

    path, stage = tmp_path / "curriculum.json", tmp_path / "00-sft"
    StageLedger(path).run("00-sft", {"cfg": 1}, _stage(stage, "old"), folder=stage)

    def killed() -> dict:
        stage.mkdir(exist_ok=True)
        assert not (stage / "old").exists()  # the changed stage started from an empty folder
        (stage / "part-new").write_text("partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        StageLedger(path).run("00-sft", {"cfg": 2}, killed, folder=stage)
    ledger = StageLedger(path)
    assert ledger.stages["00-sft"]["state"] == "running"  # never looks finished
    resumed = ledger.run("00-sft", {"cfg": 2}, _stage(stage, "new"), folder=stage)
    assert resumed == {"files": ["new", "part-new"]}  # the rerun of the same config finds its own parts
    # a folder that no entry accounts for (a deleted ledger, another tool) is not resumed into
    (tmp_path / "01-grpo").mkdir()
    (tmp_path / "01-grpo" / "stray").write_text("?")
    ledger.start("01-grpo", "h", folder=tmp_path / "01-grpo")
    assert not (tmp_path / "01-grpo").exists()


def test_ledger_finished_needs_the_hash_the_state_and_the_outputs(tmp_path):
    from engine.ledger import StageLedger

    ledger = StageLedger(tmp_path / "curriculum.json", {"config_hash": "c1"})
    model = tmp_path / "model" / "gradus_model.json"
    ledger.start("00-a", "h1")
    assert ledger.finished("00-a", "h1") is None  # running, not done
    model.parent.mkdir()
    model.write_text("{}")
    entry = ledger.finish("00-a", "h1", {"output_model": model.parent})
    assert entry["output_model"] == str(model.parent)  # as the file holds it
    reread = StageLedger(tmp_path / "curriculum.json")
    assert reread.header == {"config_hash": "c1"} and reread.finished("00-a", "h1", [model]) == entry
    assert reread.finished("00-a", "h2", [model]) is None  # another hash
    model.unlink()
    assert reread.finished("00-a", "h1", [model]) is None  # its output is gone
    reread.forget(["00-a"])
    assert StageLedger(tmp_path / "curriculum.json").stages == {}


def test_ledger_reads_the_main_jobs_earlier_flat_file(tmp_path):
    """stages.json of earlier versions: {name: {hash, result, wall_s}} at the top level, finished stages only."""
    from engine.config import config_hash
    from engine.ledger import StageLedger

    key = [{"cfg": 1}, "inputs"]
    (tmp_path / "stages.json").write_text(json.dumps({"pism": {"hash": config_hash({"key": key}), "result": {"rows": 3}, "wall_s": 1.0}}))
    assert StageLedger(tmp_path / "stages.json").run("pism", key, lambda: pytest.fail("a finished stage ran again")) == {"rows": 3}


def _imports(rel: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse((REPO / rel).read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names |= {f"{node.module}.{a.name}" for a in node.names} | {node.module}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
    return names


def test_the_demo_and_the_curriculum_keep_one_ledger():
    from pipelines.demo.run import LEDGER
    from rl.curriculum.run import STATE_FILE

    assert (LEDGER, STATE_FILE) == ("stages.json", "curriculum.json")  # the file names users know
    for rel in ("pipelines/demo/run.py", "rl/curriculum/run.py"):
        assert "engine.ledger.StageLedger" in _imports(rel), rel
    ledgers = [f"{rel}:{node.name}" for rel, tree in _modules() for node in ast.walk(tree)
               if isinstance(node, ast.ClassDef) and "ledger" in node.name.lower() and rel != "engine/ledger.py"]
    assert not ledgers, f"a second stage ledger: {ledgers}"


# ----- one blocking verl run + merge (rl/grpo/verl_run.py) -----

def test_grpo_and_the_curriculum_launch_verl_through_one_function():
    for rel in ("rl/grpo/run.py", "rl/curriculum/run.py"):
        names = _imports(rel)
        assert "rl.grpo.verl_run" in names and "subprocess" not in names, rel
        source = (REPO / rel).read_text()
        assert "verl_run.train_and_merge(" in source and "verl_run.plan(" in source, rel
        assert "RAY_JOB_CONFIG_JSON_ENV_VAR" not in source and "uploaded=" not in source, rel  # "uploaded" is decided once


# ----- the library's two import circles, cut -----

def test_generation_interface_and_data_do_not_import_their_users():
    assert not {n for n in _imports("engine/generation/base.py") if n.startswith("engine.generation.") and "backend" in n}
    data = [rel for rel, _ in _modules() if rel.startswith("engine/data/")]
    assert data and not [rel for rel in data if any(n.startswith("engine.model") for n in _imports(rel))]
