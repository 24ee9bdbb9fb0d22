"""Research log: one GRPO recipe trial on the main job's full-set pool, measured like the demo measures an arm.

Each call trains one TRL GRPO run (configs/grpo/tiny_trl.yaml + the demo's overrides + this call's
overrides) on the demo's pool (240 train samples, 40 per family; `--pool` for another), then records:
- the training reward's margin over noise (rl/grpo/reward_noise.py: last window - first window in sds of
  a difference of two noise windows sampled from the starting model; cached per window shape);
- the group signal (informative share, mean |advantage|, zero-signal rollouts) from the run's summary;
- held-out accuracy on the demo's 180-item subset of the test split, base and trained model on the same
  seeded draws (gradus eval, vLLM): sampled at `--eval-temperature` (demo: 4 draws at T 0.7) and greedy,
  each with the paired difference against the base model and its paired SE, overall and per family.
Also per family: the most frequent extracted answer's share of the draws and the share of empty boxes
(`answer_shape`: a policy that stops reading the image converges on one answer per question type).
`--extra-eval-temperatures 1.5` adds the same evaluation at other temperatures (e.g. the training one).
A pool of some families (`?tasks=...`) also gets the paired difference over those families' held-out items
(`vs_base_trained_families`, an extra column: the criterion stays on the whole held-out subset).
`--eval-only --heldout-limit 0 --eval-n 8` evaluates a recorded trial again on more items / draws, for power
(-> `heldout_powered`). A rerun of a trial whose training finished (same label and config hash) reuses it.
Model, pool, held-out split and subset, and the GRPO recipe + overrides are configs/demo.yaml's.
One entry per run is merged into benchmarks/results/grpo_recipe_search.json under `<name>-s<seed>`;
run files land in outputs/recipe_search/.
Run: .venv/bin/python benchmarks/grpo_recipe_search.py --name NAME [--seed S] [--pool SPEC|DIR] [key=value ...]
     e.g. algorithm.steps=100 algorithm.lr_schedule=cosine algorithm.warmup_ratio=0.1
Summary of what was tried: docs/demo.md, "What we tried for a GRPO recipe that learns".
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "configs" / "demo.yaml"
RESULTS = REPO / "benchmarks" / "results" / "grpo_recipe_search.json"


def demo_config():
    from engine.config import load_config
    from pipelines.demo.config import DemoConfig

    return load_config(DemoConfig, DEMO)


def paired(results, a: str, b: str) -> dict:
    """Mean paired difference a - b of per-item pass rates, with its SE (the demo's comparison table's definition)."""
    from pipelines.demo.compare import paired_difference

    d, se, n = paired_difference(results[results["pass_rate"].notna()], a, b)
    return {"diff": d, "se": se, "in_se": round(d / se, 2) if se else None, "items": n}


def evaluate(out: Path, heldout: Path, limit: int, models: dict[str, str], temperature: float, n: int,
             families: list[str] = ()) -> dict:
    """gradus eval of `models` (base first) on the demo's held-out subset; rows resume per label in `out`.
    `families`: also the paired difference over those families' items only (the trained pool's)."""
    import pandas as pd

    from engine.config import load_config
    from pipelines.evaluate import EvalJobConfig, run_eval
    from engine.paths import repo_path

    k = [1] if n == 1 else [1, n]
    cfg = load_config(EvalJobConfig, repo_path(demo_config().eval.config),
                      [f"input={heldout}", f"output={out}", f"limit={limit}", "baseline=base", f"n={n}",
                       f"k=[{','.join(map(str, k))}]", f"generation.temperature={temperature}"])
    cfg.models = models
    summary = run_eval(cfg)
    results = pd.read_parquet(out / "results.parquet")
    label = [m for m in models if m != "base"][0]
    ok = results[results["pass_rate"].notna()]
    per_task = {}
    for task in sorted(ok["task"].unique()):
        t = ok[ok["task"] == task]
        per_task[task] = {"base": round(float(t[t["model"] == "base"]["pass_rate"].mean()), 3),
                          "trained": round(float(t[t["model"] == label]["pass_rate"].mean()), 3)}
    return {"temperature": temperature, "n": n,
            "base": summary["models"]["base"]["accuracy"], "trained": summary["models"][label]["accuracy"],
            "vs_base": paired(results, label, "base"), "per_task": per_task, "items": int(ok["id"].nunique()),
            "vs_base_trained_families": paired(results[results["task"].isin(families)], label, "base") if families else None,
            "answers": {"base": answer_shape(out, "base"), "trained": answer_shape(out, label)}}


def answer_shape(eval_dir: Path, label: str) -> dict:
    """How a model's extracted answers are spread, per family: the most frequent answer's share of all draws
    (a policy that stops reading the image drifts toward one answer per question type) and the share of
    draws whose box is empty (`\\boxed{}`: valid format, no answer)."""
    import pandas as pd

    rows = pd.read_parquet(eval_dir / label / "scores.parquet").explode(["draws_extracted"])
    top = rows.groupby("task")["draws_extracted"].agg(lambda s: s.value_counts(normalize=True).iloc[0] if s.notna().any() else None)
    empty = rows.groupby("task")["draws_extracted"].agg(lambda s: (s == "").mean())
    return {"top_answer_share": top.round(3).to_dict(), "empty_box_share": empty.round(3).to_dict()}


def noise_for(cfg, pool: str, summary: dict, repeats: int, cache: dict) -> dict:
    """The run's margin over noise; noise windows are reused for runs with the same window shape."""
    from rl.grpo.reward_noise import measure_noise, reward_margin

    a = cfg.algorithm
    key = json.dumps([pool, a.temperature, a.top_p,
                      a.prompts_per_step, a.group_size, summary["reward_window"], cfg.data.max_response_length, repeats])
    if key not in cache:
        cache[key] = measure_noise(cfg, summary, repeats)["noise"]
    noise = cache[key]
    return {**reward_margin(summary["reward_first"], summary["reward_last"], noise["window_means"]),
            "noise_windows": noise["window_means"], "noise_wall_s": noise.get("wall_s")}


def flat(d: dict, prefix: str = "") -> dict:
    return {k: v for key, val in d.items() for k, v in (flat(val, f"{prefix}{key}.") if isinstance(val, dict) else {f"{prefix}{key}": val}).items()}


def finished_run(cfg) -> tuple[dict | None, float | None]:
    """The summary of a run already trained with these settings (same label; every setting the run recorded
    equal: a config field added since, at its default, does not count), so that a measurement that failed
    after training reruns without training again; (None, None) otherwise."""
    from engine.config import to_dict

    path = Path(cfg.output_dir) / "summary.json"
    if not path.is_file():
        return None, None
    summary = json.loads(path.read_text())
    meta = Path(summary.get("output_model", "")) / "gradus_model.json"
    if not meta.is_file():
        return None, None
    recorded, now = flat(json.loads(meta.read_text())["grpo_config"]), flat(to_dict(cfg))
    changed = sorted(k for k in recorded if recorded[k] != now.get(k))
    if changed:
        print(f"[recipe] {cfg.output_dir} was trained with other settings ({', '.join(changed)}): training again", flush=True)
        return None, None
    print(f"[recipe] reusing the finished run in {cfg.output_dir} (trained in {summary['train_s']} s)", flush=True)
    return summary, summary["train_s"]


def pool_families(pool: str) -> list[str]:
    """The task families a `...?tasks=a,b` pool spec trains on; [] for a pool of every family."""
    from urllib.parse import parse_qs

    query = pool.split("?", 1)[1] if "?" in pool else ""
    tasks = parse_qs(query).get("tasks", [""])[0]
    return [t for t in tasks.split(",") if t]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, help="label of this trial in the results file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pool", default="", help="training pool: a warmstart: spec or canonical shards (default: the demo's pool)")
    parser.add_argument("--eval-temperature", type=float, default=0.7)
    parser.add_argument("--eval-n", type=int, default=4)
    parser.add_argument("--extra-eval-temperatures", type=float, nargs="*", default=[],
                        help="also evaluate (same n and draws) at these temperatures, e.g. the training one -> heldout_extra")
    parser.add_argument("--heldout-limit", type=int, default=None,
                        help="held-out items (0: the whole test split; default: the demo's subset); with --eval-only: a powered evaluation")
    parser.add_argument("--eval-only", action="store_true",
                        help="evaluate an already trained run of this name/seed/config (no training) -> heldout_powered[T..-n..-limit..]")
    parser.add_argument("--repeats", type=int, default=8, help="noise windows (reused across runs of the same window shape)")
    parser.add_argument("--note", default="")
    parser.add_argument("overrides", nargs="*", help="GrpoJobConfig overrides, e.g. algorithm.lr=3e-4")
    args = parser.parse_args()

    import hashlib

    import torch

    from engine.config import load_config, to_dict
    from rl.grpo.config import GrpoJobConfig
    from engine.paths import repo_path
    from rl.sources import resolve_data, resolve_model
    from rl.grpo.trl_backend import run_trl_grpo

    demo = demo_config()
    args.pool = args.pool or demo.pool
    root = REPO / "outputs" / "recipe_search"
    pool_dir = root / "inputs" / hashlib.sha256(args.pool.encode()).hexdigest()[:12]  # one folder per pool spec
    pool = resolve_data(args.pool, pool_dir, "pool") if args.pool.startswith("warmstart:") else Path(args.pool)
    heldout = resolve_data(demo.heldout, root / "inputs", "heldout")
    base_model, model_id = resolve_model(demo.model)
    label = f"{args.name}-s{args.seed}"
    cfg = load_config(GrpoJobConfig, repo_path(demo.grpo.config), [*demo.grpo.overrides, f"model_path={base_model}", f"data.train={pool}",
                                                                  f"seed={args.seed}", f"output_dir={root / 'runs' / label}", *args.overrides])
    torch.set_num_threads(cfg.trl.torch_threads or 1)
    summary, train_s = finished_run(cfg)
    if summary is None and args.eval_only:
        raise SystemExit(f"--eval-only: no finished run {label} with this config under {cfg.output_dir}")
    if summary is None:
        started = time.time()
        summary = run_trl_grpo(cfg)
        train_s = time.time() - started

    models = {"base": str(base_model), label: summary["output_model"]}
    n, limit, families = args.eval_n, demo.heldout_limit if args.heldout_limit is None else args.heldout_limit, pool_families(args.pool)
    size = "" if limit == demo.heldout_limit else f"-limit{limit}"  # the demo's subset keeps its folders (rows resume per label)
    if args.eval_only:
        return powered_eval(label, root, size, heldout, limit, models, args, families)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"runs": {}, "noise_cache": {}}
    margin = noise_for(cfg, args.pool, summary, args.repeats, results.setdefault("noise_cache", {}))
    eval_started = time.time()
    sampled = evaluate(root / f"eval-T{args.eval_temperature}-n{n}{size}", heldout, limit, models, args.eval_temperature, n, families)
    greedy = evaluate(root / f"eval-greedy{size}", heldout, limit, models, 0.0, 1, families)
    extra = {f"T{temp}": evaluate(root / f"eval-T{temp}-n{n}{size}", heldout, limit, models, temp, n, families)
             for temp in args.extra_eval_temperatures}
    eval_s = time.time() - eval_started
    rows = [json.loads(line) for line in Path(summary["files"]["metrics"]).read_text().splitlines() if line.strip()]
    a = cfg.algorithm
    entry = {
        "name": args.name, "seed": args.seed, "note": args.note, "pool": args.pool, "overrides": args.overrides,
        "settings": {"steps": a.steps, "lr": a.lr, "kl_coef": a.kl_coef, "temperature": a.temperature, "group_size": a.group_size,
                     "prompts_per_step": a.prompts_per_step, "mini_batch_prompts": a.mini_batch_prompts, "train_rows": summary["data"]},
        "reward_first": summary["reward_first"], "reward_last": summary["reward_last"], "reward_window": summary["reward_window"],
        "kl_last": summary["kl_last"],
        "train_reward_margin_sd": margin["margin_in_diff_sd"], "margin": margin,
        "signal": summary["signal"],
        "curve": [round(r["reward"], 3) for r in rows],
        "kl_curve": [round(r.get("kl", float("nan")), 4) for r in rows],
        "heldout_sampled": sampled, "heldout_greedy": greedy, "heldout_extra": extra,
        "train_s": round(train_s, 1), "eval_s": round(eval_s, 1), "step_s_mean": summary["step_s_mean"],
        "model_id": model_id, "output_model": summary["output_model"], "config_resolved": to_dict(cfg),
    }
    cache = results["noise_cache"]
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"runs": {}, "noise_cache": {}}  # reread: keep others' entries
    results.setdefault("noise_cache", {}).update(cache)
    results.setdefault("runs", {})[label] = entry
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    s, g = sampled["vs_base"], greedy["vs_base"]
    print(json.dumps({"label": label, "margin_sd": entry["train_reward_margin_sd"], "reward": [entry["reward_first"], entry["reward_last"]],
                      "informative": summary["signal"].get("informative_share"), "kl_last": entry["kl_last"],
                      "sampled": [sampled["base"], sampled["trained"], s], "greedy": [greedy["base"], greedy["trained"], g],
                      "train_s": entry["train_s"], "eval_s": entry["eval_s"]}, indent=1))


def powered_eval(label: str, root: Path, size: str, heldout: Path, limit: int, models: dict, args, families: list[str]) -> None:
    """A larger evaluation of a recorded trial (more items / draws): sampled and greedy, merged into its entry."""
    started = time.time()
    n, temp = args.eval_n, args.eval_temperature
    sampled = evaluate(root / f"eval-T{temp}-n{n}{size}", heldout, limit, models, temp, n, families)
    greedy = evaluate(root / f"eval-greedy{size}", heldout, limit, models, 0.0, 1, families)
    results = json.loads(RESULTS.read_text())
    entry = results["runs"][label]
    entry.setdefault("heldout_powered", {})[f"T{temp}-n{n}-limit{limit}"] = {
        "sampled": sampled, "greedy": greedy, "eval_s": round(time.time() - started, 1)}
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps({"label": label, "sampled": [sampled["base"], sampled["trained"], sampled["vs_base"], sampled["vs_base_trained_families"]],
                      "greedy": [greedy["base"], greedy["trained"], greedy["vs_base"], greedy["vs_base_trained_families"]]}, indent=1))


if __name__ == "__main__":
    main()
