"""One paths module, one atomic publish helper, one source resolver (issue 20).

- engine/publish.py: a folder or file is replaced whole or not at all; a failed write leaves the
  previous output and no partial; a partial left by a killed write never reaches the output;
- engine/paths.py: repo-relative names and the cache root resolve as the docs say;
- no module of engine/, rl/ or pipelines/ renames temporaries into place or computes the repo root
  itself (both go through the helpers above);
- SFT and GRPO configs expose their training data reference under one name (rl/sources.py TrainInputs).
"""
from __future__ import annotations

import ast
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
