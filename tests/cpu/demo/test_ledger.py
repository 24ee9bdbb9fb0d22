"""The demo's stage ledger: a stage whose config changed is redone from scratch, an interrupted one resumes."""
from __future__ import annotations

import json

from engine.demo.run import Ledger


def _stage(folder, marker: str):
    def fn() -> dict:
        folder.mkdir(exist_ok=True)
        (folder / marker).write_text(marker)
        return {"files": sorted(p.name for p in folder.iterdir())}
    return fn


def test_a_changed_stage_is_redone_in_an_emptied_folder(tmp_path):
    stage = tmp_path / "pism"
    first = Ledger(tmp_path).run("pism", {"cfg": 1}, _stage(stage, "old"), output=stage)
    assert first == {"files": ["old"]}
    # same key: skipped, the recorded result comes back and nothing runs
    again = Ledger(tmp_path).run("pism", {"cfg": 1}, _stage(stage, "never"), output=stage)
    assert again == first and not (stage / "never").exists()
    # another config: the old run's files are gone before the stage runs again (a scoring stage
    # refuses a folder that holds a run of another config)
    redone = Ledger(tmp_path).run("pism", {"cfg": 2}, _stage(stage, "new"), output=stage)
    assert redone == {"files": ["new"]}
    assert json.loads((tmp_path / "stages.json").read_text())["pism"]["result"] == redone


def test_an_interrupted_stage_keeps_its_folder_to_resume(tmp_path):
    stage = tmp_path / "pism"
    ledger = Ledger(tmp_path)
    ledger.run("pism", {"cfg": 1}, _stage(stage, "old"), output=stage)

    def killed() -> dict:
        stage.mkdir(exist_ok=True)
        assert not (stage / "old").exists()  # the changed stage started from an empty folder
        (stage / "part-new").write_text("partial")
        raise KeyboardInterrupt

    try:
        Ledger(tmp_path).run("pism", {"cfg": 2}, killed, output=stage)
    except KeyboardInterrupt:
        pass
    # the rerun of the new config finds its own partial parts (the old run's entry was dropped)
    resumed = Ledger(tmp_path).run("pism", {"cfg": 2}, _stage(stage, "new"), output=stage)
    assert resumed == {"files": ["new", "part-new"]}
