"""Benchmark: the online difficulty sampler against uniform and a static mid+hard selection, on the tiny model.

The main job's pool (configs/demo.yaml: 240 train samples, 40 per family) is scored (PISM + CMAB),
stored and selected exactly as `gradus demo` does it (pipelines/demo/run.py, with its stage
ledger, so a rerun reuses the scores). Then three TRL GRPO arms, the demo's GRPO recipe with the
same step budget (`--steps`), per seed:
- uniform: the whole pool in TRL's shuffled order;
- mid_hard: the static PISM mid+hard selection in TRL's shuffled order;
- online: the whole pool, each step's prompts chosen by the online sampler (sampler.kind=online,
  prior from the samples' PISM/CMAB tags, updated from every rollout verdict).
Writes benchmarks/results/sampler.json:
- informative_share.<arm>: share of prompt groups whose rewards differ (GRPO gets a gradient), mean
  over steps, then over seeds;
- uniform_steps: the uniform arm's steps; uniform_final_reward: its training reward over the last
  `window` steps (window = the backend's reward window: a fifth of the run, at most 10 steps),
  mean over seeds;
- steps_to_match_uniform: per seed, the first step at which the online arm's training reward,
  averaged over the `window` steps up to it, reaches that seed's uniform final reward (null when it
  never does); the mean over seeds (null if any seed never matched);
- per_seed: each run's reward_first / reward_last / informative share / wall, and the online
  arm's distinct prompts; prepare_s: scoring + store + selections (prepare_reused: the stages an
  earlier run in the same --out had finished, so not redone); `--selections DIR` trains on a
  finished selection job's output (e.g. an earlier demo's <out_dir>/select) instead, recorded as
  selections_from.
Training rewards of arms that train on different prompts are not the same measurement of the
model: an arm that picks prompts near pass rate 0.5 has a training reward near 0.5 by
construction. docs/sampler.md says what the numbers do and do not show.
Run: .venv/bin/python benchmarks/sampler.py [--seeds 0 1] [--steps 20] [--out outputs/bench/sampler]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results" / "sampler.json"
ARMS = {"uniform": ("grpo_fullset", []), "mid_hard": ("grpo_mid_hard", []), "online": ("grpo_fullset", ["sampler.kind=online"])}


def prepare(out: Path):
    """The demo's scoring, store and selections in `out` (ledgered: reused on a rerun)."""
    from engine.config import load_config
    from engine.ledger import StageLedger
    from pipelines.demo.config import DemoConfig
    from pipelines.demo.run import LEDGER, data_identity, score_pool, shape
    from rl.sources import resolve_data, resolve_model

    cfg = load_config(DemoConfig, REPO / "configs" / "demo.yaml", [f"out_dir={out}"])
    out.mkdir(parents=True, exist_ok=True)
    ledger = StageLedger(out / LEDGER)
    model_path, model_id = resolve_model(cfg.model)
    pool = resolve_data(cfg.pool, out / "inputs", "pool")
    data = data_identity(cfg.pool, pool)
    pism, cmab = score_pool(cfg, ledger, pool, data, model_path, model_id, out)
    _, select = shape(cfg, ledger, pool, data, out, [pism["config_hash"], cmab["config_hash"]])
    return cfg, model_path, select, pism


def reuse(select_dir: Path):
    """A finished selection job's output (selection.json + selections/), instead of scoring the pool again."""
    from engine.config import load_config
    from pipelines.demo.config import DemoConfig
    from rl.sources import resolve_model

    cfg = load_config(DemoConfig, REPO / "configs" / "demo.yaml")
    select = json.loads((select_dir / "selection.json").read_text())
    return cfg, resolve_model(cfg.model)[0], select


def train(cfg, model_path: Path, select: dict, select_dir: Path, out: Path, arm: str, seed: int, steps: int) -> dict:
    from engine.config import load_config
    from engine.paths import repo_path
    from rl.grpo.config import GrpoJobConfig
    from rl.grpo.trl_backend import read_metrics, run_trl_grpo

    select_arm, extra = ARMS[arm]
    data = select_dir / select["arms"][select_arm]["grpo"]["path"]
    run_dir = out / "train" / f"{arm}-s{seed}"
    grpo = load_config(GrpoJobConfig, repo_path(cfg.grpo.config), [
        *cfg.grpo.overrides, f"algorithm.steps={steps}", f"model_path={model_path}", f"output_dir={run_dir}",
        f"data.train={data}", f"seed={seed}", "wandb.mode=disabled", *extra])
    summary = run_trl_grpo(grpo)
    rows = read_metrics(run_dir / "metrics.jsonl")
    return {"summary": summary, "rows": rows}


def trailing(values: list[float], k: int) -> list[float | None]:
    """Mean of the k values up to each step (None before k steps)."""
    return [sum(values[i - k + 1: i + 1]) / k if i + 1 >= k else None for i in range(len(values))]


def steps_to_match(online: list[float], target: float, k: int) -> int | None:
    for step, value in enumerate(trailing(online, k), 1):
        if value is not None and value >= target:
            return step
    return None


def main() -> None:
    from rl.grpo.group_signal import reward_window

    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=20)  # the main job's GRPO step budget
    parser.add_argument("--out", default=str(REPO / "outputs" / "bench" / "sampler"))
    parser.add_argument("--selections", default="", help="a finished selection job's folder (e.g. an earlier demo's "
                        "<out_dir>/select) to train on instead of scoring the pool again")
    args = parser.parse_args()
    out = Path(args.out)
    started = time.time()
    ledger = out / "stages.json"
    reused = sorted(json.loads(ledger.read_text())["stages"]) if ledger.is_file() else []  # stages an earlier run of this out dir finished
    if args.selections:
        select_dir = Path(args.selections)
        cfg, model_path, select = reuse(select_dir)
    else:
        select_dir = out / "select"
        cfg, model_path, select, _ = prepare(out)
    prepare_s = round(time.time() - started, 1)

    runs: dict[str, dict] = {}
    for seed in args.seeds:
        for arm in ARMS:
            t0 = time.time()
            runs[f"{arm}-s{seed}"] = train(cfg, model_path, select, select_dir, out, arm, seed, args.steps) | {"wall_s": round(time.time() - t0, 1)}

    k = reward_window(args.steps)
    mean = lambda xs: round(sum(xs) / len(xs), 4)  # noqa: E731
    share = {arm: mean([mean([r["informative_share"] for r in runs[f"{arm}-s{s}"]["rows"]]) for s in args.seeds]) for arm in ARMS}
    per_seed, matched = {}, []
    for s in args.seeds:
        uniform_final = mean([r["reward"] for r in runs[f"uniform-s{s}"]["rows"][-k:]])
        match = steps_to_match([r["reward"] for r in runs[f"online-s{s}"]["rows"]], uniform_final, k)
        matched.append(match)
        for arm in ARMS:
            run = runs[f"{arm}-s{s}"]
            sm = run["summary"]
            per_seed[f"{arm}-s{s}"] = {"reward_first": sm["reward_first"], "reward_last": sm["reward_last"],
                                       "informative_share": mean([r["informative_share"] for r in run["rows"]]),
                                       "train_prompts": sm["data"]["kept"], "wall_s": run["wall_s"],
                                       **({"distinct_prompts": len({r for r in _ids(out, arm, s)})} if arm == "online" else {}),
                                       **({"uniform_final_reward": uniform_final, "steps_to_match_uniform": match} if arm == "online" else {})}
    record = {
        "informative_share": share,
        "uniform_steps": args.steps,
        "uniform_final_reward": mean([per_seed[f"uniform-s{s}"]["reward_last"] for s in args.seeds]),
        "steps_to_match_uniform": None if None in matched else mean(matched),
        "steps_to_match_uniform_per_seed": matched,
        "window": k,
        "seeds": args.seeds,
        "per_seed": per_seed,
        "selection_sizes": {name: sel.get("count") for name, sel in select["selections"].items()},
        "selections_from": str(select_dir),
        "recipe": {"config": cfg.grpo.config,
                   "overrides": [o for o in cfg.grpo.overrides if not o.startswith("algorithm.steps=")] + [f"algorithm.steps={args.steps}"]},
        "prepare_s": prepare_s,
        "prepare_reused": [] if args.selections else reused,
        "wall_s": round(time.time() - started, 1),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores, CPU only",
        "definitions": "informative_share: mean over steps and seeds of the share of prompt groups with differing rewards; "
                       "steps_to_match_uniform: first step where the online arm's trailing-window training reward reaches "
                       "the uniform arm's last-window reward (same seed), mean over seeds",
    }
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: record[k] for k in ("informative_share", "uniform_steps", "steps_to_match_uniform", "wall_s")}, indent=2))


def _ids(out: Path, arm: str, seed: int) -> list[str]:
    from rl.grpo.rollout_log import read_rollouts

    return [i for i in read_rollouts(out / "train" / f"{arm}-s{seed}" / "rollouts").column("id").to_pylist() if i is not None]


if __name__ == "__main__":
    main()
