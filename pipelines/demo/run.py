"""The main job: corpus -> PISM + CMAB -> difficulty store -> selections -> training arms -> eval -> report.

After training, each arm's GRPO stage gets a noise measurement (windows sampled from the stage's
starting model: train_reward_margin_sd); the report adds the GRPO mechanism and the generations
spent per arm (pipelines/demo/measures.py).

Each stage is the stage's own recipe (its YAML + overrides from the demo config) run in this
process; the demo only wires paths between them. A stage ledger (`<out_dir>/stages.json`,
engine/ledger.py) records each stage with a hash of its resolved config and of the stages it read
from, so rerunning the same command after a kill skips what is done and redoes only what changed
or never finished (PISM, CMAB and eval also resume inside a stage; training arms resume per
curriculum stage).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from engine import __version__
from engine.config import config_hash, load_config, to_dict
from engine.ledger import StageLedger
from engine.paths import repo_path
from pipelines.demo.config import DemoConfig

LEDGER = "stages.json"


def data_identity(spec: str, path: Path) -> dict:
    """What a stage read, for the ledger: the source spec and its parquet files by name and size.

    A `?per_task=` subset is rewritten (same content, new mtime) on every run, so mtimes would
    invalidate every stage; a changed spec or a changed file (size) does invalidate."""
    files = [path] if path.is_file() else sorted(path.rglob("*.parquet"))
    return {"spec": spec, "files": [(str(f.relative_to(path)) if f != path else f.name, f.stat().st_size) for f in files]}


def _recipe(cls, recipe, overrides: list[str]):
    return load_config(cls, repo_path(recipe.config), [*overrides, *recipe.overrides])


def _keep(summary: dict, keys: tuple[str, ...]) -> dict:
    return {k: summary[k] for k in keys if k in summary}


def score_pool(cfg: DemoConfig, ledger: StageLedger, pool: Path, data: dict, model_path: Path, model_id: str, out: Path) -> tuple[dict, dict]:
    from pipelines.cmab import CmabJobConfig, run_cmab
    from pipelines.pism import PismJobConfig, run_pism

    pism_cfg = _recipe(PismJobConfig, cfg.pism, [f"input={pool}", f"output={out / 'pism'}", f"generation.model_path={model_path}"])
    pism_cfg.model_id = model_id
    pism = ledger.run("pism", [pism_cfg.scores_key(), data], lambda: _keep(run_pism(pism_cfg), (
        "rows", "scored", "buckets", "per_task_buckets", "quarantined", "errors", "generations", "survival", "plots", "config_hash", "report", "wall_s")),
        folder=out / "pism")
    cmab_cfg = _recipe(CmabJobConfig, cfg.cmab, [f"input={pool}", f"output={out / 'cmab'}", f"model_path={model_path}",
                                                 f"responses.pism_scores={out / 'pism' / 'scores.parquet'}",
                                                 f"heatmaps.per_task={cfg.heatmaps_per_task}"])
    cmab_cfg.model_id = model_id
    cmab = ledger.run("cmab", [to_dict(cmab_cfg), pism["config_hash"], data], lambda: _keep(run_cmab(cmab_cfg), (
        "rows", "scored", "unsolved", "buckets", "rho_bar_per_task", "response_sources", "generations", "heatmaps", "plots",
        "config_hash", "report", "wall_s")), folder=out / "cmab")
    return pism, cmab


def shape(cfg: DemoConfig, ledger: StageLedger, pool: Path, data: dict, out: Path, upstream: list) -> tuple[dict, dict]:
    from pipelines.shaping.select import SelectJobConfig, run_select
    from pipelines.shaping.store import StoreConfig, run_store

    store_cfg = _recipe(StoreConfig, cfg.store, [f"samples={pool}", f"output={out / 'store'}",
                                                 f"sources.pism.path={out / 'pism'}", f"sources.cmab.path={out / 'cmab'}"])

    def build_store() -> dict:
        import shutil

        shutil.rmtree(out / "store", ignore_errors=True)  # a rebuild from changed scores, not a merge into stale ones
        return run_store(store_cfg)

    store = ledger.run("store", [to_dict(store_cfg), upstream, data], build_store)
    select_cfg = _recipe(SelectJobConfig, cfg.select, [f"store={out / 'store'}", f"output={out / 'select'}"])
    select = ledger.run("select", [to_dict(select_cfg), store["config_hash"]], lambda: run_select(select_cfg))
    missing = [a.select_arm for a in cfg.arms.values() if a.select_arm not in select["arms"]]
    if missing:
        from engine.config import ConfigError

        raise ConfigError(f"demo.arms name selection arms {missing} that {cfg.select.config} does not define; it has {sorted(select['arms'])}")
    return store, select


def arm_curriculum(cfg: DemoConfig, label: str, seed: int, select: dict, model_path: Path, out: Path):
    """The arm as a curriculum: [SFT on its sft set ->] GRPO on its grpo set, from the start model."""
    from rl.curriculum.config import CurriculumConfig, StageConfig

    sets = select["arms"][cfg.arms[label].select_arm]
    stages = []
    for role in ("sft", "grpo"):
        if role in sets:
            recipe = getattr(cfg, role)
            extra = cfg.arms[label].grpo_overrides if role == "grpo" else []
            stages.append(StageConfig(name=role, kind=role, config=recipe.config, overrides=[*recipe.overrides, *extra],
                                      data=str(out / "select" / sets[role]["path"])))
    return CurriculumConfig(model_path=str(model_path), output_dir=str(out / "train" / f"{label}-s{seed}"), seed=seed, stages=stages)


def untrainable(cfg: DemoConfig, select: dict) -> dict[str, str]:
    """Arms whose GRPO set is too small for one GRPO step (label -> reason): reported, not crashed on."""
    from rl.grpo.config import GrpoJobConfig

    grpo = _recipe(GrpoJobConfig, cfg.grpo, [])
    need = grpo.algorithm.prompts_per_step
    reasons = {}
    for label, arm in cfg.arms.items():
        for role, s in select["arms"][arm.select_arm].items():
            least = need if role == "grpo" else 1
            if s["count"] < least:
                reasons[label] = f"{role} set {s['selection']} has {s['count']} samples (< {least})"
    return reasons


def train_arms(cfg: DemoConfig, ledger: StageLedger, select: dict, model_path: Path, out: Path) -> tuple[dict[str, dict], dict[str, str]]:
    from rl.curriculum.run import run_curriculum

    runs, skipped = {}, untrainable(cfg, select)
    for label, reason in skipped.items():
        print(f"[demo] arm {label} not trained: {reason}", file=sys.stderr, flush=True)
    for seed in cfg.seeds:
        for label in cfg.arms:
            if label in skipped:
                continue
            cur = arm_curriculum(cfg, label, seed, select, model_path, out)
            name = f"{label}-s{seed}"
            runs[name] = ledger.run(f"train/{name}", [to_dict(cur), select["config_hash"]], lambda cur=cur: _train_record(run_curriculum(cur)))
    return runs, skipped


def _train_record(result: dict) -> dict:
    stages = []
    for st in result["stages"]:
        s = st.get("summary") or {}
        stages.append({"name": st["name"], "kind": st["kind"], "output_model": st["output_model"],
                       **_keep(s, ("steps", "reward_first", "reward_last", "train_rows", "loss_curve", "wall_s")),
                       "metrics": (s.get("files") or {}).get("metrics")})
    return {"final_model": result["final_model"], "stages": stages, "wall_s": result.get("wall_s")}


def measure_noise(cfg: DemoConfig, ledger: StageLedger, runs: dict[str, dict]) -> dict[str, dict | None]:
    """Per training run: noise windows from its GRPO stage's starting model and the training reward's
    margin over them (rl/grpo/reward_noise.py); None where not measured (noise_repeats 0, no TRL metrics)."""
    from engine.config import from_dict
    from pipelines.demo.measures import grpo_stage
    from rl.grpo.config import GrpoJobConfig
    from rl.grpo.reward_noise import measure_noise as run_noise

    out: dict[str, dict | None] = {}
    for name, run in runs.items():
        stage = grpo_stage(run)
        if not cfg.noise_repeats or not stage or not stage.get("metrics"):  # a verl stage logs no per-step reward here
            out[name] = None
            continue
        folder = Path(stage["metrics"]).parent

        def measure(folder: Path = folder) -> dict:
            grpo_cfg = from_dict(GrpoJobConfig, json.loads((folder / "grpo_config.json").read_text()))
            return run_noise(grpo_cfg, json.loads((folder / "summary.json").read_text()), cfg.noise_repeats)

        out[name] = ledger.run(f"noise/{name}", [ledger.stages[f"train/{name}"]["hash"], cfg.noise_repeats], measure)
    return out


def evaluate(cfg: DemoConfig, ledger: StageLedger, heldout: Path, model_path: Path, runs: dict[str, dict], out: Path) -> dict:
    from pipelines.evaluate import EvalJobConfig, run_eval

    models = {"base": str(model_path), **{name: r["final_model"] for name, r in runs.items()}}
    ev_cfg = _recipe(EvalJobConfig, cfg.eval, [f"input={heldout}", f"output={out / 'eval'}", f"limit={cfg.heldout_limit}", "baseline=base"])
    ev_cfg.models = models  # labels name directories; set here, not through dotted overrides
    ev_cfg.require_paths()

    def run() -> dict:
        import shutil

        from pipelines.evaluate import stale_models

        for label in stale_models(ev_cfg):  # retrained since its rows were written: evaluate it again
            print(f"[demo] eval: {label} changed since it was evaluated; its rows are redone", file=sys.stderr, flush=True)
            shutil.rmtree(out / "eval" / label)
        return _keep(run_eval(ev_cfg), ("models", "deltas", "n", "k", "temperature", "backend", "seed", "items", "plots", "report",
                                        "accuracy_definition", "wall_s"))

    # keyed on the training runs' ledger hashes: a retrained arm in the same folder is a new model
    trained = {n: ledger.stages[f"train/{n}"]["hash"] for n in runs}
    return ledger.run("eval", [to_dict(ev_cfg), trained, data_identity(cfg.heldout, heldout)], run)


def warmstart_note(model_path: Path) -> dict:
    """The embedded default's own acceptance check, carried into the summary (nothing for a user's model)."""
    from rl.warmstart import read_record

    warm = read_record(model_path)
    if warm is None:
        return {}
    note = {"warmstart": {k: warm.get(k) for k in ("overall_acc", "per_family", "accepted", "acceptance", "wall_s")}}
    if not warm.get("accepted"):
        # Difficulty scores need a model that is neither an oracle nor blind: say so, loudly.
        note["warning"] = f"warm-started model is outside the acceptance band ({warm.get('acceptance')}); see docs/warmstart.md"
    return note


def run_demo(cfg: DemoConfig) -> dict:
    from pipelines.demo.report import write_report
    from rl.sources import resolve_data, resolve_model

    cfg.validate()
    started = time.time()
    out = Path(cfg.out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    ledger = StageLedger(out / LEDGER, job="demo")
    model_path, model_id = resolve_model(cfg.model)
    pool = resolve_data(cfg.pool, out / "inputs", "pool")
    heldout = resolve_data(cfg.heldout, out / "inputs", "heldout")

    data = data_identity(cfg.pool, pool)  # what scoring and the store read, for their ledger keys
    pism, cmab = score_pool(cfg, ledger, pool, data, model_path, model_id, out)
    store, select = shape(cfg, ledger, pool, data, out, [pism["config_hash"], cmab["config_hash"]])
    runs, skipped = train_arms(cfg, ledger, select, model_path, out)
    noise = measure_noise(cfg, ledger, runs)
    ev = evaluate(cfg, ledger, heldout, model_path, runs, out)

    summary: dict[str, Any] = {
        "job": "demo",
        "gradus_version": __version__,
        "config_hash": config_hash(cfg),
        "seeds": cfg.seeds,
        "model_id": model_id,
        "model_path": str(model_path),
        "pool": str(pool),
        "heldout": str(heldout),
        "pism": pism,
        "cmab": cmab,
        "store": _keep(store, ("rows", "partition_by", "config_hash")),
        "select": {"selections": {n: s["count"] for n, s in select["selections"].items()},
                   "arms": {label: {role: s["count"] for role, s in select["arms"][a.select_arm].items()} for label, a in cfg.arms.items()},
                   "config_hash": select["config_hash"]},
        "train": runs,
        "train_noise": noise,
        "arms_not_trained": skipped,
        "eval": ev,
        "stage_wall_s": {name: e.get("wall_s") for name, e in ledger.stages.items()},
        **warmstart_note(model_path),
    }
    summary.update(write_report(cfg, summary, out))
    summary["wall_s"] = round(time.time() - started, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary
