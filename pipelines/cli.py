"""`gradus` command line: one subcommand per recipe of pipelines/registry.py, each `--config FILE`
plus `key=value` overrides; a recipe's flags are sugar for its config fields. Besides the recipes:
`submit` / `jobs` (recipes as Ray jobs).
"""
from __future__ import annotations

import argparse
import json
import signal
import sys

from engine.config import ConfigError, dump_yaml, load_config
from engine.paths import CONFIG_DIR
from pipelines.registry import RECIPES, Flag, Recipe


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


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the line breaks of descriptions and epilogs, and states each option's default
    unless its help already does (or there is none to state)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.required or action.default in (None, False, "", [], argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


def _command(subparsers, name: str, text: str, **kwargs) -> argparse.ArgumentParser:
    """A subcommand whose --help opens with what it does (argparse shows `help` only in the parent's list)."""
    return subparsers.add_parser(name, help=text, description=text, formatter_class=_HelpFormatter, **kwargs)


def _add_recipe_args(p: argparse.ArgumentParser, recipe: Recipe) -> None:
    p.add_argument("--config", default=str(CONFIG_DIR / recipe.default_config), help=f"YAML config (default configs/{recipe.default_config})")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides, values parsed as YAML (docs/configs.md lists every key)")
    for flag in recipe.flags:
        if flag.switch:
            p.add_argument(flag.option, dest=_flag_dest(flag), action="store_true", help=f"{flag.help} (sets {flag.field}=true)")
        else:
            p.add_argument(flag.option, dest=_flag_dest(flag), default=None, choices=flag.choices or None, type=flag.parse,
                           action="append" if flag.repeat else "store", help=f"{flag.help} (sets {flag.field})",
                           metavar=None if flag.choices else flag.option.lstrip("-").upper().replace("-", "_"))  # not the dest's name
    p.set_defaults(recipe=recipe)


def _flag_dest(flag: Flag) -> str:
    return "flag_" + flag.field.replace(".", "__")


def _flag_overrides(recipe: Recipe, args: argparse.Namespace) -> list[str]:
    """The given flags as `field=value` overrides, after the user's: a flag wins, as it always did."""
    overrides = []
    for flag in recipe.flags:
        value = getattr(args, _flag_dest(flag))
        if value is None or value is False:  # not given (`--actors 0` is given)
            continue
        # JSON text is YAML: a path stays a string, a number a number, repeated values a list
        overrides.append(f"{flag.field}=true" if value is True else f"{flag.field}={json.dumps(value)}")
    return overrides


def build_parser() -> argparse.ArgumentParser:
    from engine import __version__

    parser = argparse.ArgumentParser(prog="gradus", description="Difficulty-aware data shaping for multimodal RL post-training.",
                                     formatter_class=_HelpFormatter)
    parser.add_argument("--version", action="version", version=f"gradus {__version__}")
    top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help="`gradus COMMAND --help` tells more")
    groups: dict[str, argparse._SubParsersAction] = {}
    for recipe in RECIPES.values():
        *group, action = recipe.name.split()
        parent = top
        if group:
            if group[0] not in groups:
                groups[group[0]] = _command(top, group[0], GROUPS[group[0]]).add_subparsers(
                    dest="action", required=True, metavar="ACTION", help=f"`gradus {group[0]} ACTION --help` tells more")
            parent = groups[group[0]]
        _add_recipe_args(_command(parent, action, recipe.help, epilog=recipe.epilog or None), recipe)
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
    from pipelines.submit import submit

    pipeline, overrides = " ".join(args.pipeline.split()), list(args.overrides)
    if pipeline not in RECIPES and overrides and "=" not in overrides[0]:  # `gradus submit score pism ...` unquoted
        pipeline, overrides = f"{pipeline} {overrides[0]}", overrides[1:]
    record = submit(pipeline, args.config, overrides, addr=args.address, runtime_env_file=args.runtime_env,
                    job_id=args.job_id, python=args.python)
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
    if config.startswith("env:"):  # a submitted job's resolved config (pipelines/submit.py)
        from pipelines.submit import config_from_env

        config = config_from_env(config[4:])
    cfg = load_config(recipe.config_cls(), config, [*args.overrides, *_flag_overrides(recipe, args)])
    if args.print_config:
        print(dump_yaml(cfg), end="")
        return ExitCode(0)
    return recipe.runner()(cfg)


def _ray_connected() -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


if __name__ == "__main__":
    sys.exit(main())
