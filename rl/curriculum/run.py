"""`gradus train curriculum`: SFT / GRPO stages as one job, each from the previous stage's final model.

Stage i runs in `<output_dir>/stages/<i:02d>-<name>/` with its own recipe config (configs/sft/*.yaml
or configs/grpo/*.yaml + the stage's overrides), its own data and stop criterion; the curriculum
sets the recipe's `model_path` (stage 0: `model_path`, then the previous stage's `model/`),
`output_dir` (the stage folder) and `seed`. Every stage leaves its final HF folder in
`<stage>/model/` (published atomically by the recipe: written as `model.partial`, then renamed).

Resume at stage granularity: `<output_dir>/curriculum.json` is the job's stage ledger
(engine/ledger.py), one entry per stage with a hash of its resolved recipe config, stop criterion,
data (spec + file stats of its source) and input model (file stats). A rerun of the same command
skips each stage whose entry is done for the same hash and whose model folder is there, and runs
from the first stage that changed or never finished; all later stages run again (their input model
changed). A stage is done only after its model is published, so a kill mid-stage never looks
finished. A stage folder left by a different config is cleared before the stage runs; one left by
an interrupted run of the same config is kept (TRL resumes from its `checkpoints/` when
`trl.save_every` > 0; verl with `resume_mode: auto`).

Backends: SFT through Ray Train (rl/train_sft.py), GRPO through TRL in this process
(rl/grpo/trl_backend.py, with the stop criterion as a TrainerCallback) or verl through the same
blocking run as `gradus train grpo` (rl/grpo/verl_run.py: `main_ppo` as a child process, then
verl's model merger to `model/`; no polling, no kill). A curriculum
with verl stages runs where verl can start (a GPU machine, or a job submitted with
`gradus submit "train curriculum"`): a stage with `verl.address` is refused.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from engine import __version__
from engine.config import ConfigError, apply_override, config_hash, from_dict, to_dict
from engine.ledger import StageLedger
from engine.publish import publish_text
from rl.curriculum.config import CurriculumConfig, StageConfig, recipe_file
from rl.curriculum.data import resolve_stage_data
from rl.sources import TrainInputs, data_fingerprint, fingerprint

STATE_FILE = "curriculum.json"
STAGES_DIR = "stages"
MODEL_DIR = "model"
PLANNED_MODEL = "<the previous stage's model>"


def stage_dir(out: Path, index: int, name: str) -> Path:
    return out / STAGES_DIR / f"{index:02d}-{name}"


def _set(data: dict, dotted: str, value: Any) -> None:
    node = data
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{dotted}: {part!r} is not a section")
    node[last] = value


def _recipe_cls(kind: str) -> type:
    if kind == "sft":
        from rl.sft.config import SFTConfig

        return SFTConfig
    from rl.grpo.config import GrpoJobConfig

    return GrpoJobConfig


def build_stage_config(cfg: CurriculumConfig, index: int, stage: StageConfig, model_path: str | Path, out: Path):
    """The stage's recipe config: its YAML, the curriculum's seed, the stage overrides, then what the
    curriculum sets (model, folder, data, max_steps, stop, wandb). Errors name the stage."""
    where = f"curriculum stage {stage.name!r} ({stage.kind}, {stage.config})"
    file = recipe_file(stage.config)
    raw = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: top level must be a mapping")
    raw["seed"] = cfg.seed
    try:
        for item in stage.overrides:
            apply_override(raw, item)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    raw["model_path"] = str(model_path)
    raw["output_dir"] = str(stage_dir(out, index, stage.name))
    if stage.kind == "sft":
        if stage.data:
            raw["train_data"] = stage.data
        if stage.stop.max_steps:
            raw["max_steps"] = stage.stop.max_steps
        if stage.stop.loss_at_most:
            raw["stop_loss_at_most"], raw["stop_window"] = stage.stop.loss_at_most, stage.stop.window
    else:
        if stage.data:
            _set(raw, "data.train", stage.data)
        if stage.stop.max_steps:
            _set(raw, "algorithm.steps", stage.stop.max_steps)
        run_name = f"{cfg.wandb.run_name or out.name}-{index:02d}-{stage.name}"
        raw["wandb"] = {"mode": cfg.wandb.mode, "project": cfg.wandb.project, "run_name": run_name}
    try:
        recipe = from_dict(_recipe_cls(stage.kind), raw)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    if stage.kind == "grpo":
        if recipe.backend == "verl":
            if stage.stop.reward_at_least:
                raise ConfigError(f"{where}: stop.reward_at_least needs the trl backend (verl runs to algorithm.steps; use stop.max_steps)")
            if recipe.verl.address:
                raise ConfigError(f"{where}: verl.address is set; in a curriculum verl runs inside the job: submit the whole "
                                  "curriculum (gradus submit 'train curriculum' ...) and set verl.address= in the stage overrides")
            from rl.grpo.verl_run import require_checkpoints

            try:
                require_checkpoints(recipe)
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from exc
        else:
            from rl.grpo.trl_backend import validate_trl

            try:
                validate_trl(recipe)
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from exc
    return recipe


def stage_hash(stage: StageConfig, recipe: TrainInputs, input_model: str | Path) -> str:
    """Identity of a stage run: resolved recipe config (less wandb), stop criterion, data, input model."""
    resolved = to_dict(recipe)
    resolved.pop("wandb", None)
    payload = {"kind": stage.kind, "recipe": resolved, "stop": to_dict(stage.stop), "input_model": fingerprint(input_model),
               "data": data_fingerprint(recipe.train_source)}
    if stage.kind == "grpo" and recipe.data.val:
        payload["val"] = data_fingerprint(recipe.data.val)
    return config_hash(payload)


def _write_json(path: Path, data: dict) -> None:
    publish_text(path, json.dumps(data, indent=2, default=str) + "\n")


def _not_stopped(steps: Any) -> dict:
    return {"stopped_early": False, "reason": "", "step": steps}


def _run_sft_stage(recipe) -> dict:
    from rl.train_sft import run_sft_job

    summary = run_sft_job(recipe)
    summary.setdefault("stop", _not_stopped(summary.get("steps")))
    return summary


def _run_trl_stage(stage: StageConfig, recipe) -> dict:
    from rl.curriculum.stops import reward_stop_callback
    from rl.grpo.trl_backend import run_trl_grpo

    out = Path(recipe.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "grpo_config.json").write_text(json.dumps(to_dict(recipe), indent=2))
    callbacks = [reward_stop_callback(stage.stop.reward_at_least, stage.stop.window)] if stage.stop.reward_at_least else []
    summary = run_trl_grpo(recipe, callbacks=callbacks)
    summary["stop"] = dict(callbacks[0].result) if callbacks else _not_stopped(summary.get("steps"))
    return summary


def _run_verl_stage(recipe, input_model: Path, meta: dict) -> dict:
    """verl to completion, then its last checkpoint merged into <stage>/model (rl/grpo/verl_run.py)."""
    from rl.grpo import verl_run

    plan = verl_run.plan(recipe)
    verl_run.require_cluster("run the curriculum on a GPU machine or submit it as one job "
                             "(gradus submit 'train curriculum' --config ...); use --dry-run to check the stages here")
    trained = verl_run.train_and_merge(recipe, plan["overrides"], input_model, meta)
    summary = {"job": "train grpo", "backend": "verl", "steps": recipe.algorithm.steps, "checkpoint": trained["checkpoint"],
               "overrides": plan["overrides"], "train_file": plan["train_file"], "config_hash": config_hash(recipe),
               "seed": recipe.seed, "gradus_version": __version__, "stop": _not_stopped(recipe.algorithm.steps),
               "output_model": trained["model_path"], "sampler": trained["sampler"], "wall_s": trained["wall_s"]}
    (Path(recipe.output_dir) / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def _annotate(model: Path, info: dict) -> None:
    """Add the curriculum's record to the stage model's gradus_model.json (before the stage is recorded)."""
    meta_file = model / "gradus_model.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    _write_json(meta_file, {**meta, "curriculum": info})


def _start_model(spec: str, dry_run: bool) -> tuple[Path, str]:
    from engine.paths import repo_path
    from rl.sources import WARMSTART, resolve_model

    if dry_run and not spec.startswith(WARMSTART) and not (repo_path(spec) / "config.json").is_file():
        return repo_path(spec), spec  # a cluster path that does not exist here: planned as given
    return resolve_model(spec)


def plan_curriculum(cfg: CurriculumConfig) -> dict:
    """--dry-run: every stage's resolved config (verl: exported data, validated override set, the
    main_ppo and merge commands), each from the previous stage's planned model folder. Trains nothing."""
    cfg.validate()
    cfg.require_paths()
    out = Path(cfg.output_dir).expanduser().resolve()
    model, model_id = _start_model(cfg.model_path, dry_run=True)
    stages = []
    for index, stage in enumerate(cfg.stages):
        recipe = build_stage_config(cfg, index, stage, model, out)
        recipe.train_source = resolve_stage_data(recipe.train_source, out, cfg.seed)
        sdir = stage_dir(out, index, stage.name)
        entry = {"index": index, "name": stage.name, "kind": stage.kind, "stage_dir": str(sdir), "input_model": str(model),
                 "output_model": str(sdir / MODEL_DIR), "config": to_dict(recipe), "stop": to_dict(stage.stop)}
        if stage.kind == "grpo":
            entry["backend"] = recipe.backend
            if recipe.backend == "verl":
                from rl.grpo import verl_run

                entry["verl"] = verl_run.plan(recipe)
        stages.append(entry)
        model = sdir / MODEL_DIR
    return {"dry_run": True, "stages": stages, "final_model": str(model), "model_id": model_id, "config_hash": config_hash(cfg),
            "seed": cfg.seed, "gradus_version": __version__}


def run_curriculum(cfg: CurriculumConfig) -> dict:
    """Run (or resume) the stages in order; returns {stages: [...], final_model, wall_s, provenance}.
    With `dry_run` set, only plans them (plan_curriculum)."""
    if cfg.dry_run:
        return plan_curriculum(cfg)
    cfg.validate()
    cfg.require_paths()
    started = time.time()
    out = Path(cfg.output_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    # Every stage's config is built before anything trains: a typo in the last stage fails now.
    for index, stage in enumerate(cfg.stages):
        build_stage_config(cfg, index, stage, PLANNED_MODEL, out)
    model, model_id = _start_model(cfg.model_path, dry_run=False)
    header = {"config_hash": config_hash(cfg), "model_path": cfg.model_path, "seed": cfg.seed, "gradus_version": __version__}
    ledger = StageLedger(out / STATE_FILE, header, job="curriculum")
    names = [stage_dir(out, index, stage.name).name for index, stage in enumerate(cfg.stages)]
    ledger.forget(set(ledger.stages) - set(names))  # stages this config no longer has
    results, rerun = [], False
    for index, stage in enumerate(cfg.stages):
        sdir = stage_dir(out, index, stage.name)
        recipe = build_stage_config(cfg, index, stage, model, out)
        recipe.train_source = resolve_stage_data(recipe.train_source, out, cfg.seed)
        digest = stage_hash(stage, recipe, model)
        final = sdir / MODEL_DIR
        record = None if rerun else ledger.finished(sdir.name, digest, outputs=[final / "gradus_model.json"])
        if record is not None:
            print(f"[curriculum] stage {index} {stage.name}: finished earlier with the same config and input, skipped",
                  file=sys.stderr, flush=True)
            results.append({**record, "skipped": True})
            model = final
            continue
        rerun = True  # this stage and every later one run
        ledger.forget(names[index + 1:])  # later records are gone until those stages finish again
        ledger.start(sdir.name, digest, folder=sdir)  # a folder of another config is emptied, an interrupted run kept
        sdir.mkdir(parents=True, exist_ok=True)
        print(f"[curriculum] stage {index} {stage.name} ({stage.kind}"
              + (f", {recipe.backend}" if stage.kind == "grpo" else "") + f") from {model}", file=sys.stderr, flush=True)
        stage_started = time.time()
        if stage.kind == "sft":
            summary = _run_sft_stage(recipe)
        elif recipe.backend == "trl":
            summary = _run_trl_stage(stage, recipe)
        else:
            summary = _run_verl_stage(recipe, Path(model), {"model_id": model_id})
        if not (final / "gradus_model.json").is_file():
            raise RuntimeError(f"curriculum stage {stage.name}: no model at {final} after the stage finished")
        info = {"output_dir": str(out), "index": index, "stage": stage.name, "kind": stage.kind, "stage_hash": digest,
                "curriculum_config_hash": header["config_hash"]}
        _annotate(final, info)
        record = ledger.finish(sdir.name, digest, {  # the entry as the state file holds it, also for this run's caller
            "index": index, "name": stage.name, "kind": stage.kind, "stage_dir": str(sdir), "input_model": str(model),
            "output_model": str(final), "stop": summary.get("stop"), "wall_s": round(time.time() - stage_started, 1),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "summary": summary})
        results.append({**record, "skipped": False})
        model = final

    result = {"job": "train curriculum", "stages": results, "final_model": str(model), "model_id": model_id,
              "stages_run": sum(not r["skipped"] for r in results), "stages_skipped": sum(r["skipped"] for r in results),
              "wall_s": round(time.time() - started, 1), "config_hash": header["config_hash"], "seed": cfg.seed,
              "gradus_version": __version__, "state_file": str(out / STATE_FILE)}
    from engine.tracking import log_summary

    result["wandb_run"] = log_summary(cfg.wandb, out, "curriculum", to_dict(cfg), result)
    _write_json(out / "summary.json", result)
    return result
