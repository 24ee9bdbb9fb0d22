"""The main job on the embedded default, as far as gradus goes today.

synthetic corpus -> warm-started tiny Qwen2.5-VL (cached) -> over a per-family slice of the
held-out split: Ray Data generation on vLLM (CPU here; verified accuracy per task) -> PISM
scores (vLLM) -> CMAB scores reusing PISM's verified clean-image answers -> summary JSON, each
stage's report.html under out_dir. Later stages (shaping, GRPO) plug in after scoring.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine import __version__
from engine.config import config_hash, load_config, to_dict
from engine.generation.base import GenerationConfig
from pipelines.generate import ActorPoolConfig, GenerateJobConfig

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class DemoConfig:
    warmstart_config: str = "configs/warmstart/tiny.yaml"  # relative to the repo root, or absolute
    warmstart_overrides: list[str] = field(default_factory=list)
    out_dir: str = "outputs/demo"
    split: str = "test"
    limit: int = 120  # rows sent through the generation pipeline, split evenly over task families
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    actors: ActorPoolConfig = field(default_factory=ActorPoolConfig)
    pism_config: str = "configs/pism/tiny.yaml"  # the scoring stages' own configs (input/output/model set here)
    pism_overrides: list[str] = field(default_factory=list)
    cmab_config: str = "configs/cmab/tiny.yaml"
    cmab_overrides: list[str] = field(default_factory=list)


def _per_family_subset(split_dir: Path, limit: int, out_dir: Path) -> Path:
    """The first limit/n_families rows of each task family, so every family shows up in the demo."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from engine.data.shards import read_table

    table = read_table(split_dir)
    tasks = sorted(set(table.column("task").to_pylist()))
    per_task = max(1, limit // len(tasks))
    parts = [table.filter(pc.equal(table.column("task"), t)).slice(0, per_task) for t in tasks]
    out_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.concat_tables(parts), out_dir / "part-00000.parquet")
    return out_dir


def _repo_path(path: str) -> Path:
    return Path(path) if Path(path).is_absolute() else REPO_ROOT / path


def _stage(summary: dict, keys: tuple[str, ...]) -> dict:
    return {k: summary[k] for k in keys if k in summary}


def run_demo(cfg: DemoConfig) -> dict:
    from pipelines.cmab import CmabJobConfig, run_cmab
    from pipelines.generate import run_generate
    from pipelines.pism import PismJobConfig, run_pism
    from rl.warmstart import WarmstartConfig, cache_root, ensure_corpus, ensure_warmstart

    started = time.time()
    ws_cfg = load_config(WarmstartConfig, _repo_path(cfg.warmstart_config), cfg.warmstart_overrides)
    model_path = ensure_warmstart(ws_cfg)
    warm = json.loads((model_path / "warmstart.json").read_text())
    corpus = ensure_corpus(ws_cfg.synth, cache_root(ws_cfg.cache_dir))
    out = Path(cfg.out_dir).resolve()
    demo_input = _per_family_subset(corpus / cfg.split, cfg.limit, out / "input")
    gen_cfg = GenerationConfig(**{**to_dict(cfg.generation), "model_path": str(model_path)})
    job = GenerateJobConfig(input=str(demo_input), output=str(out / "generations"), generation=gen_cfg, actors=cfg.actors, seed=ws_cfg.sft.seed)
    generation = run_generate(job, model_id=ws_cfg.model.model_id)

    pism_cfg = load_config(PismJobConfig, _repo_path(cfg.pism_config),
                           [f"input={demo_input}", f"output={out / 'pism'}", f"generation.model_path={model_path}", *cfg.pism_overrides])
    pism = run_pism(pism_cfg, model_id=ws_cfg.model.model_id)
    cmab_cfg = load_config(CmabJobConfig, _repo_path(cfg.cmab_config),
                           [f"input={demo_input}", f"output={out / 'cmab'}", f"model_path={model_path}",
                            f"responses.pism_scores={out / 'pism' / 'scores.parquet'}", *cfg.cmab_overrides])
    cmab = run_cmab(cmab_cfg, model_id=ws_cfg.model.model_id)
    summary = {
        "gradus_version": __version__,
        "config_hash": config_hash(cfg),
        "model_id": ws_cfg.model.model_id,
        "model_path": str(model_path),
        "corpus": str(corpus),
        "warmstart": {k: warm[k] for k in ("overall_acc", "per_family", "accepted", "acceptance", "wall_s")},
        "generation": generation,
        "pism": _stage(pism, ("rows", "scored", "buckets", "quarantined", "errors", "generations", "survival", "config_hash", "report", "wall_s")),
        "cmab": _stage(cmab, ("rows", "scored", "unsolved", "buckets", "rho_bar_per_task", "response_sources", "generations",
                              "config_hash", "report", "wall_s")),
        "wall_s": round(time.time() - started, 1),
    }
    if not warm["accepted"]:
        # Difficulty scores need a model that is neither an oracle nor blind: say so, loudly.
        summary["warning"] = f"warm-started model is outside the acceptance band ({warm['acceptance']}); see docs/warmstart.md"
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
