"""The main job on the embedded default, as far as gradus goes today.

synthetic corpus -> warm-started tiny Qwen2.5-VL (cached) -> Ray Data generation pipeline on
vLLM (CPU here) over the held-out split -> verified accuracy per task -> summary JSON.
Later stages (PISM, CMAB, shaping, GRPO, report) plug in after the generation stage.
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


def run_demo(cfg: DemoConfig) -> dict:
    from rl.warmstart import WarmstartConfig, cache_root, ensure_corpus, ensure_warmstart
    from pipelines.generate import run_generate

    started = time.time()
    ws_path = Path(cfg.warmstart_config)
    ws_cfg = load_config(WarmstartConfig, ws_path if ws_path.is_absolute() else REPO_ROOT / ws_path, cfg.warmstart_overrides)
    model_path = ensure_warmstart(ws_cfg)
    warm = json.loads((model_path / "warmstart.json").read_text())
    corpus = ensure_corpus(ws_cfg.synth, cache_root(ws_cfg.cache_dir))
    out = Path(cfg.out_dir).resolve()
    demo_input = _per_family_subset(corpus / cfg.split, cfg.limit, out / "input")
    gen_cfg = GenerationConfig(**{**to_dict(cfg.generation), "model_path": str(model_path)})
    job = GenerateJobConfig(input=str(demo_input), output=str(out / "generations"), generation=gen_cfg, actors=cfg.actors, seed=ws_cfg.sft.seed)
    generation = run_generate(job, model_id=ws_cfg.model.model_id)
    summary = {
        "gradus_version": __version__,
        "config_hash": config_hash(cfg),
        "model_id": ws_cfg.model.model_id,
        "model_path": str(model_path),
        "corpus": str(corpus),
        "warmstart": {k: warm[k] for k in ("overall_acc", "per_family", "accepted", "acceptance", "wall_s")},
        "generation": generation,
        "wall_s": round(time.time() - started, 1),
    }
    if not warm["accepted"]:
        # Difficulty scores need a model that is neither an oracle nor blind: say so, loudly.
        summary["warning"] = f"warm-started model is outside the acceptance band ({warm['acceptance']}); see docs/warmstart.md"
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
