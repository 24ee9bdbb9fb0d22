"""`gradus` command line: one subcommand per recipe, each `--config FILE` plus `key=value` overrides.

The recipe registry below is the single list of what the CLI can run (torchtune style); each
entry names its config dataclass, default YAML and the function that runs it.
"""
from __future__ import annotations

import argparse
from collections import Counter
import json
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from engine.config import ConfigError, dump_yaml, load_config
from engine.data.sample import SPLITS
from engine.paths import CONFIG_DIR, cache_root


@dataclass(frozen=True)
class Recipe:
    name: str  # "group action", e.g. "data synth"
    help: str
    config_cls: Callable[[], type]  # lazy: heavy imports happen only for the recipe that runs
    default_config: str  # relative to configs/
    run: Callable[[Any, argparse.Namespace], Any]  # (config, parsed CLI args)
    extra_args: Callable[[argparse.ArgumentParser], None] | None = None


def _synth_cls():
    from engine.synth.config import SynthConfig

    return SynthConfig


def _synth_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="", help="output directory (default: the gradus cache, keyed by config hash)")


def _run_synth(cfg, args) -> dict:
    from engine.synth import build_corpus
    from rl.warmstart import ensure_corpus

    if not args.out:
        return {"out": str(ensure_corpus(cfg, cache_root()))}
    return {"out": args.out, **build_corpus(cfg, args.out)}


def _warmstart_cls():
    from rl.warmstart import WarmstartConfig

    return WarmstartConfig


def _run_warmstart(cfg, args) -> dict:
    from rl.warmstart import ensure_warmstart, read_record

    path = ensure_warmstart(cfg)
    record = read_record(path)
    return {"model_path": str(path), **{k: record[k] for k in ("overall_acc", "per_family", "accepted", "acceptance", "wall_s")}}


def _build_tiny_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="", help="directory for the HF model folder (required)")


def _run_build_tiny(cfg, args) -> dict:
    from rl.warmstart import build_initial_model

    if not args.out:
        raise ConfigError("model build-tiny: --out DIR is required")
    path = build_initial_model(cfg, args.out)
    return {"model_path": str(path), "model_id": cfg.model.model_id}


def _generate_cls():
    from pipelines.generate import GenerateJobConfig

    return GenerateJobConfig


def _run_generate(cfg, args) -> dict:
    from pipelines.generate import run_generate

    return run_generate(cfg)


def _pism_cls():
    from pipelines.pism import PismJobConfig

    return PismJobConfig


def _run_pism(cfg, args) -> dict:
    from pipelines.pism import run_pism

    return run_pism(cfg)


def _cmab_cls():
    from pipelines.cmab import CmabJobConfig

    return CmabJobConfig


def _run_cmab(cfg, args) -> dict:
    from pipelines.cmab import run_cmab

    return run_cmab(cfg)


def _eval_cls():
    from pipelines.evaluate import EvalJobConfig

    return EvalJobConfig


def _run_eval(cfg, args) -> dict:
    from pipelines.evaluate import run_eval

    return run_eval(cfg)


def _rejection_cls():
    from pipelines.rejection_sample import RejectionSampleConfig

    return RejectionSampleConfig


def _run_rejection(cfg, args) -> dict:
    from pipelines.rejection_sample import run_rejection_sample

    return run_rejection_sample(cfg)


def _reformulate_cls():
    from engine.shaping.reformulate_job import ReformulateJobConfig

    return ReformulateJobConfig


def _run_reformulate(cfg, args) -> dict:
    from engine.shaping.reformulate_job import run_reformulate

    return run_reformulate(cfg)


def _store_cls():
    from engine.shaping.store_job import StoreConfig

    return StoreConfig


def _run_store(cfg, args) -> dict:
    from engine.shaping.store_job import run_store

    return run_store(cfg)


def _select_cls():
    from engine.shaping.select_job import SelectJobConfig

    return SelectJobConfig


def _run_select(cfg, args) -> dict:
    from engine.shaping.select_job import run_select

    return run_select(cfg)


def _mix_cls():
    from engine.shaping.mix_job import MixJobConfig

    return MixJobConfig


def _run_mix(cfg, args) -> dict:
    from engine.shaping.mix_job import run_mix

    return run_mix(cfg)


def _mix_search_cls():
    from engine.shaping.mix_job import MixSearchConfig

    return MixSearchConfig


def _run_mix_search(cfg, args) -> dict:
    from engine.shaping.mix_job import run_mixture_search

    return run_mixture_search(cfg)


def _grpo_cls():
    from rl.grpo.config import GrpoJobConfig

    return GrpoJobConfig


def _grpo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=["verl", "trl"], default=None, help="overrides the config's backend")
    p.add_argument("--dry-run", action="store_true", help="verl: export data, validate and print the run without launching it")


def _run_grpo(cfg, args) -> dict:
    from rl.grpo.run import run_grpo

    if args.backend:
        cfg.backend = args.backend
    return run_grpo(cfg, dry_run=args.dry_run)


def _sft_cls():
    from rl.sft.config import SFTConfig

    return SFTConfig


def _run_sft(cfg, args) -> dict:
    from rl.sft.run import run_sft_job

    return run_sft_job(cfg)


def _curriculum_cls():
    from rl.curriculum.config import CurriculumConfig

    return CurriculumConfig


def _curriculum_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="resolve every stage (verl: export data, validate the override set) without training")


def _run_curriculum(cfg, args) -> dict:
    from rl.curriculum.run import run_curriculum

    return run_curriculum(cfg, dry_run=args.dry_run)


def _demo_cls():
    from engine.demo import DemoConfig

    return DemoConfig


def _run_demo(cfg, args) -> dict:
    from engine.demo import run_demo

    return run_demo(cfg)


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in [
        Recipe("data synth", "render the synthetic verifiable corpus to canonical parquet shards", _synth_cls, "synth/default.yaml", _run_synth, _synth_args),
        Recipe("model build-tiny", "build the tiny Qwen2.5-VL offline (tokenizer from the synthetic corpus, random weights)", _warmstart_cls, "warmstart/tiny.yaml", _run_build_tiny, _build_tiny_args),
        Recipe("model warmstart", "build the tiny Qwen2.5-VL offline and SFT it on the synthetic corpus (cached)", _warmstart_cls, "warmstart/tiny.yaml", _run_warmstart),
        Recipe("generate", "Ray Data pipeline: shards -> vLLM/HF actor pool -> verified generations", _generate_cls, "generate/default.yaml", _run_generate),
        Recipe("score pism", "PISM difficulty on Ray Data: masked multi-ratio generation on vLLM/HF actor pools, resumable", _pism_cls, "pism/tiny.yaml", _run_pism),
        Recipe("score cmab", "CMAB difficulty on Ray Data: attention balance from one lean forward per verified answer, resumable", _cmab_cls, "cmab/tiny.yaml", _run_cmab),
        Recipe("eval", "before/after accuracy per task and pass@k (unbiased, n seeded draws per item) on a held-out split, resumable",
               _eval_cls, "eval/default.yaml", _run_eval),
        Recipe("data rejection-sample", "rejection-sampling SFT data: n sampled responses per item, keep the verified ones as canonical shards",
               _rejection_cls, "rejection/default.yaml", _run_rejection),
        Recipe("data reformulate", "Curr-ReFT stages from open samples: balanced yes/no judge and letter-choice variants with verifier-checked distractors",
               _reformulate_cls, "reformulate/default.yaml", _run_reformulate),
        Recipe("store build", "join PISM/CMAB/pass-rate scores onto canonical samples: hive-partitioned difficulty store, provenance per run", _store_cls, "store/default.yaml", _run_store),
        Recipe("select", "named selections and GRPO-only / SFT+GRPO arms from a difficulty store (presets grpo_only, sft_grpo, paper_table4)", _select_cls, "select/default.yaml", _run_select),
        Recipe("mix build", "MoDoMoDo domain mixture: weights + concat/interleave strategy + budget, optional easy->hard curriculum order", _mix_cls, "mix/default.yaml", _run_mix),
        Recipe("mix search", "mixture search from past (weights, score) runs: seed designs, heuristics, Scheffe surrogate proposal with uncertainty, the next runs to launch", _mix_search_cls, "mix/search.yaml", _run_mix_search),
        Recipe("train grpo", "GRPO: verl on a cluster (ray job submit; validated override set) or TRL on this machine", _grpo_cls, "grpo/tiny_trl.yaml", _run_grpo, _grpo_args),
        Recipe("train sft", "SFT on Ray Train (CPU workers: DDP over gloo; GPU workers: DDP or DeepSpeed ZeRO); warmstart: references for model and data",
               _sft_cls, "sft/tiny.yaml", _run_sft),
        Recipe("train curriculum", "SFT / GRPO stages as one resumable job, each from the previous stage's final model (per-stage data, overrides, stop criteria)",
               _curriculum_cls, "curriculum/tiny_sft_grpo.yaml", _run_curriculum, _curriculum_args),
        Recipe("demo", "the main job end to end on the embedded default", _demo_cls, "demo.yaml", _run_demo),
    ]
}


# What each command group holds (`gradus GROUP --help`).
GROUPS = {
    "data": "corpora and training files: render the synthetic corpus, convert foreign formats to canonical shards, "
            "export shards for a trainer, rejection-sample, reformulate, read verl's pass rates",
    "model": "the embedded default model: build the tiny Qwen2.5-VL, or build it and SFT it on the synthetic corpus",
    "score": "difficulty of every sample on Ray Data, resumable: PISM (masked multi-ratio generation) and CMAB (attention balance)",
    "store": "the difficulty store: PISM / CMAB / pass-rate scores joined onto the canonical samples",
    "mix": "domain mixtures: build one, or search past runs for the next ones to launch",
    "train": "training: GRPO (verl or TRL), SFT (Ray Train), SFT / GRPO curricula",
}
# `data convert --from` and `data export --to` (engine/data/formats: READERS, WRITERS).
CONVERT_FORMATS = {
    "vtriune": "V-Triune / Orsta-Data-47k parquet: prompt, images (bytes or path), reward_model with verifier names",
    "difficulty_sampling": "DifficultySampling (PISM / CMAB paper) JSONL: id, ability, prompt, ground_truth, image_paths",
    "swift": "ms-swift GRPO JSONL: messages, images, solution, extra columns",
    "curr_reft": "Curr-ReFT GRPO JSONL: problem, solution, task, image; the stage (judge / choice / open) from the path",
    "verl": "verl RLHFDataset parquet: prompt, images, reward_model, extra_info (gradus's own exports come back field for field)",
}
EXPORT_FORMATS = {
    "verl": "verl RLHFDataset parquet, images embedded: OUT.parquet, or OUT/ with train/val/test.parquet",
    "swift": "ms-swift GRPO JSONL, images in images/ beside it: OUT.jsonl, or OUT/ with train/val/test.jsonl",
    "llamafactory": "LLaMA-Factory sharegpt JSONL + dataset_info.json, images in images/: OUT.jsonl or OUT/",
}
IMAGE_PATHS_HELP = """image paths:
  A relative image path is looked up under each --image-root in turn; an absolute one must lie
  under one of them. With no --image-root the input's own directory is the only root. A record
  whose image is missing or resolves outside the roots is quarantined with its reason code
  (OUT/quarantine/), never read. Images are embedded in the output shards, so later jobs need no
  image root for them."""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the line breaks of descriptions and epilogs, and states each option's default
    unless its help already does (or there is none to state)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.required or action.default in (None, False, "", [], argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


def _listing(title: str, items: dict[str, str]) -> str:
    width = max(map(len, items))
    return f"{title}:\n" + "\n".join(f"  {name:<{width}}  {text}" for name, text in items.items())


def _command(subparsers, name: str, text: str, **kwargs) -> argparse.ArgumentParser:
    """A subcommand whose --help opens with what it does (argparse shows `help` only in the parent's list)."""
    return subparsers.add_parser(name, help=text, description=text, formatter_class=_HelpFormatter, **kwargs)


def _add_recipe_args(p: argparse.ArgumentParser, recipe: Recipe) -> None:
    p.add_argument("--config", default=str(CONFIG_DIR / recipe.default_config), help=f"YAML config (default configs/{recipe.default_config})")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides, values parsed as YAML (docs/configs.md lists every key)")
    if recipe.extra_args:
        recipe.extra_args(p)
    p.set_defaults(recipe=recipe)


def build_parser() -> argparse.ArgumentParser:
    from engine import __version__

    parser = argparse.ArgumentParser(prog="gradus", description="Difficulty-aware data shaping for multimodal RL post-training.",
                                     formatter_class=_HelpFormatter)
    parser.add_argument("--version", action="version", version=f"gradus {__version__}")
    top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help="`gradus COMMAND --help` tells more")
    groups: dict[str, argparse._SubParsersAction] = {}
    for recipe in RECIPES.values():
        words = recipe.name.split()
        if len(words) == 1:
            _add_recipe_args(_command(top, words[0], recipe.help), recipe)
            continue
        if words[0] not in groups:
            groups[words[0]] = _command(top, words[0], GROUPS[words[0]]).add_subparsers(
                dest="action", required=True, metavar="ACTION", help=f"`gradus {words[0]} ACTION --help` tells more")
        _add_recipe_args(_command(groups[words[0]], words[1], recipe.help), recipe)
    data = groups["data"]
    conv = _command(data, "convert", "read a foreign corpus into canonical parquet shards; bad records go to OUT/quarantine/ with a reason code",
                    epilog=f"{_listing('formats', CONVERT_FORMATS)}\n\n{IMAGE_PATHS_HELP}")
    conv.add_argument("--from", dest="fmt", required=True, choices=list(CONVERT_FORMATS), metavar="FORMAT",
                      help=f"input format, one of: {', '.join(CONVERT_FORMATS)} (see formats below)")
    conv.add_argument("--input", required=True, help="a file or a directory of them in that format")
    conv.add_argument("--out", required=True, help="output directory: canonical shards, and quarantine/ for rejected records")
    conv.add_argument("--image-root", action="append", default=[],
                      help="directory image paths resolve under (repeatable; relative paths are tried under each in turn); "
                           "default: the input's own directory")
    conv.add_argument("--split", default="train", choices=SPLITS, help="split given to records that name none")
    conv.set_defaults(handler=_cmd_convert)
    exp = _command(data, "export", "write canonical shards in a training framework's format", epilog=_listing("formats", EXPORT_FORMATS))
    exp.add_argument("--to", dest="fmt", required=True, choices=list(EXPORT_FORMATS), metavar="FORMAT",
                     help=f"output format, one of: {', '.join(EXPORT_FORMATS)} (see formats below)")
    exp.add_argument("--input", required=True, help="canonical shards (a directory, or one parquet file)")
    exp.add_argument("--out", required=True, help="a file with the format's suffix, or a directory with one file per split")
    exp.set_defaults(handler=_cmd_export)
    rates = _command(data, "pass-rates", "verl's rollout dump (trainer.rollout_data_dir) -> pass rates per sample id for `store build`")
    rates.add_argument("--rollouts", required=True, help="verl's rollout_data_dir (<step>.jsonl files)")
    rates.add_argument("--output", required=True, help="pass_rates.parquet to write")
    rates.add_argument("--data", default="", help="the verl parquet trained on: every dumped id must be one of its extra_info.id (default: not checked)")
    rates.add_argument("--run", default="", help="the run's output_dir (verl_run.json: provenance); default: the dump's parent")
    rates.add_argument("--model-id", default="", help="model id recorded per row (default: the run's provenance)")
    rates.add_argument("--config-hash", default="", help="config hash recorded per row (default: the run's provenance)")
    rates.add_argument("--seed", type=int, default=None, help="seed recorded per row (default: the run's provenance)")
    rates.add_argument("--stage", default="", help="stage name recorded per row; default: the run folder's name")
    rates.set_defaults(handler=_cmd_pass_rates)

    sub = _command(top, "submit", "run a recipe on a Ray cluster as a job (ray job submit); config validated here first")
    sub.add_argument("pipeline", help=f"a recipe name, e.g. 'score pism' (one of: {', '.join(RECIPES)})")
    sub.add_argument("--address", default=None, help="Ray dashboard URL (default: RAY_ADDRESS if a URL, else http://127.0.0.1:8265)")
    sub.add_argument("--config", default=None, help="YAML config (default: the recipe's)")
    sub.add_argument("--runtime-env", default=None, help="YAML runtime_env merged over gradus's (pip/image, extra env vars, excludes); default: gradus's alone")
    sub.add_argument("--job-id", default=None, help="submission id (default: Ray's)")
    sub.add_argument("--python", default="python", help="interpreter on the cluster that has gradus's dependencies")
    sub.add_argument("--follow", action="store_true", help="stream the job's logs; exit with 0 only if it succeeded")
    sub.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    sub.set_defaults(handler=_cmd_submit)
    jobs = _command(top, "jobs", "status, logs or stop of a job started with `gradus submit`").add_subparsers(
        dest="action", required=True, metavar="ACTION", help="`gradus jobs ACTION --help` tells more")
    for name, text, handler in (("status", "the job's status, message, entrypoint and start / end times", _cmd_job_status),
                                ("logs", "print the job's logs so far", _cmd_job_logs),
                                ("stop", "ask Ray to stop the job: its driver gets SIGTERM, its actors and their engines end with it",
                                 _cmd_job_stop)):
        p = _command(jobs, name, text)
        p.add_argument("job_id", help="the submission id `gradus submit` printed")
        p.add_argument("--address", default=None, help="Ray dashboard URL (default: RAY_ADDRESS if a URL, else http://127.0.0.1:8265)")
        p.set_defaults(handler=handler)
    return parser


def _cmd_submit(args):
    from engine import jobs

    pipeline, overrides = " ".join(args.pipeline.split()), list(args.overrides)
    if pipeline not in RECIPES and overrides and "=" not in overrides[0]:  # `gradus submit score pism ...` unquoted
        pipeline, overrides = f"{pipeline} {overrides[0]}", overrides[1:]
    record = jobs.submit(pipeline, args.config, overrides, recipes=RECIPES, config_dir=CONFIG_DIR, addr=args.address,
                         runtime_env_file=args.runtime_env, job_id=args.job_id, python=args.python)
    print(json.dumps(record, indent=2), flush=True)
    if args.follow:
        return ExitCode(jobs.follow(record["job_id"], args.address))
    return None


def _cmd_job_status(args) -> dict:
    from engine import jobs

    return jobs.status(args.job_id, args.address)


def _cmd_job_logs(args):
    from engine import jobs

    sys.stdout.write(jobs.logs(args.job_id, args.address))
    return None


def _cmd_job_stop(args) -> dict:
    from engine import jobs

    return jobs.stop(args.job_id, args.address)


class ExitCode(int):
    """A handler's way to set the process exit status without printing a result."""


def _cmd_convert(args) -> dict:
    from engine.data.formats import read_records
    from engine.data.images import ImagePolicy
    from engine.data.shards import write_quarantine, write_shards

    samples, quarantined = read_records(args.fmt, args.input, ImagePolicy(roots=tuple(args.image_root)), split=args.split)
    written = write_shards(samples, args.out)
    qpath = write_quarantine(quarantined, args.out)
    reasons = dict(Counter(q.reason for q in quarantined))
    return {"samples": len(samples), "shards": [str(p) for p in written], "quarantined": len(quarantined), "reasons": reasons, "quarantine_file": str(qpath) if qpath else None}


def _cmd_export(args) -> dict:
    from engine.data.formats import write_records
    from engine.data.shards import iter_samples

    paths = write_records(args.fmt, list(iter_samples(args.input)), args.out)
    return {"written": [str(p) for p in paths]}


def _cmd_pass_rates(args) -> dict:
    from rl.grpo.rollout_log import verl_pass_rates

    return verl_pass_rates(args.rollouts, args.output, data=args.data, run_dir=args.run, model_id=args.model_id,
                           config_hash=args.config_hash, seed=args.seed, stage=args.stage)


def main(argv: list[str] | None = None) -> int:
    from engine.ray_session import Stopped, shutdown_ray, stop_engines, stop_on_signals

    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    # argparse takes one run of positionals: `submit PIPELINE --config F key=value` leaves the
    # overrides after the options unparsed; they are still overrides.
    if unknown and getattr(args, "handler", None) is _cmd_submit and not any(u.startswith("-") for u in unknown):
        args.overrides = list(args.overrides) + unknown
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    ray_was_up = _ray_connected()  # a caller's session (a test's) is the caller's to stop
    stopped = None
    def on_stop_signal(signum: int) -> None:
        print(f"gradus: stopped by {signal.Signals(signum).name}: shutting down the engines and Ray this job started",
              file=sys.stderr, flush=True)
        if not ray_was_up:
            stop_engines()  # before the stop unwinds through Ray Data, which kills its actors outright

    try:
        with stop_on_signals(on_stop_signal):
            result = _run(args)
    except Stopped as exc:
        stopped = exc
    except (ConfigError, FileNotFoundError, KeyError) as exc:
        print(f"gradus: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if not ray_was_up:
            shutdown_ray(interrupted=stopped is not None)
    if stopped is not None:
        return int(stopped.code)
    if isinstance(result, ExitCode):
        return int(result)
    if result is not None:
        print(json.dumps(result, indent=2, default=str))
    return 0


def _run(args):
    """The command's result: a handler's, a recipe's, or ExitCode(0) after --print-config."""
    if hasattr(args, "handler"):
        return args.handler(args)
    recipe: Recipe = args.recipe
    config = args.config
    if config.startswith("env:"):  # a submitted job's resolved config (engine/jobs.py)
        from engine.jobs import config_from_env

        config = config_from_env(config[4:])
    cfg = load_config(recipe.config_cls(), config, args.overrides)
    if args.print_config:
        print(dump_yaml(cfg), end="")
        return ExitCode(0)
    return recipe.run(cfg, args)


def _ray_connected() -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


if __name__ == "__main__":
    sys.exit(main())
