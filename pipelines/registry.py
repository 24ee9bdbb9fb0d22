"""Every runnable recipe, as data: the one table the CLI (pipelines/cli.py), `gradus submit`
(pipelines/submit.py) and the config reference page (pipelines/reference.py) read.

A recipe is a config dataclass, its default YAML under configs/, and a function `run(cfg)`. Both are
named as "module:attribute" and imported only when used, so `gradus --help` stays fast and a recipe's
heavy dependencies load only when it runs. A flag is sugar for one config field: `--dry-run` sets
`dry_run=true`, so whatever a flag does, a config file or a `key=value` override can do too.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from engine.data.sample import SPLITS


@dataclass(frozen=True)
class Flag:
    option: str  # e.g. "--dry-run"
    field: str  # the dotted config field it sets
    help: str
    choices: tuple[str, ...] = ()
    switch: bool = False  # a flag without a value: sets the field to true
    repeat: bool = False  # may be given several times: the values, in order, replace the (list) field
    parse: Callable[[str], Any] = str  # the value's type (int for counts), so the override carries a number, not text


@dataclass(frozen=True)
class Recipe:
    name: str  # "group action", e.g. "data synth"
    help: str
    config: str  # "module:ConfigClass"
    run: str  # "module:function", called as function(cfg)
    default_config: str  # relative to configs/
    flags: tuple[Flag, ...] = ()
    epilog: str = ""  # shown after the options in `--help` (e.g. the formats a flag accepts)

    def config_cls(self) -> type:
        return _attribute(self.config)

    def runner(self) -> Callable[[Any], Any]:
        return _attribute(self.run)


def _attribute(ref: str) -> Any:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def _listing(title: str, items: dict[str, str]) -> str:
    """`title:` then one aligned line per item: its name, then what it is."""
    width = max(map(len, items))
    return f"{title}:\n" + "\n".join(f"  {name:<{width}}  {text}" for name, text in items.items())


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

_CONVERT_FLAGS = (
    Flag("--from", "format", "input format (see formats below)", choices=tuple(CONVERT_FORMATS)),
    Flag("--input", "input", "a file or a directory of them in that format"),
    Flag("--out", "out", "output directory: canonical shards, and quarantine/ for rejected records"),
    Flag("--image-root", "images.roots", "directory image paths resolve under (repeatable; relative paths are tried under each in turn); "
         "none given: the input's own directory", repeat=True),
    Flag("--split", "split", "split given to records that name none", choices=SPLITS),
)
_EXPORT_FLAGS = (
    Flag("--to", "format", "output format (see formats below)", choices=tuple(EXPORT_FORMATS)),
    Flag("--input", "input", "canonical shards (a directory, or one parquet file)"),
    Flag("--out", "out", "a file with the format's suffix, or a directory with one file per split"),
    Flag("--image-root", "image_roots", "directory image paths of path-only images resolve under (repeatable); "
         "none given: only embedded images are written", repeat=True),
    Flag("--rows-per-block", "rows_per_block", "rows a Ray Data block converts at a time (memory bound)", parse=int),
    Flag("--actors", "actors", "Ray Data actors converting blocks; 0 = one per CPU of the cluster", parse=int),
    Flag("--local-below-rows", "local_below_rows", "inputs with fewer rows are exported in this process (same code, no Ray job start-up)",
         parse=int),
)
_PASS_RATES_FLAGS = (
    Flag("--rollouts", "rollouts", "verl's rollout_data_dir (<step>.jsonl files)"),
    Flag("--output", "output", "pass_rates.parquet to write"),
    Flag("--data", "data", "the verl parquet trained on: every dumped id must be one of its extra_info.id (not given: not checked)"),
    Flag("--run", "run_dir", "the run's output_dir (verl_run.json: provenance); not given: the dump's parent"),
    Flag("--model-id", "model_id", "model id recorded per row (not given: the run's provenance)"),
    Flag("--config-hash", "config_hash", "config hash recorded per row (not given: the run's provenance)"),
    Flag("--seed", "seed", "seed recorded per row (not given: the run's provenance)", parse=int),
    Flag("--stage", "stage", "stage name recorded per row; not given: the run folder's name"),
)

_OUT_CORPUS = Flag("--out", "out", "output directory (default: the gradus cache, keyed by config hash)")
_OUT_MODEL = Flag("--out", "out", "directory for the HF model folder (required)")
_BACKEND = Flag("--backend", "backend", "overrides the config's backend", choices=("verl", "trl"))
_DRY_RUN_GRPO = Flag("--dry-run", "dry_run", "verl: export data, validate and print the run without launching it", switch=True)
_DRY_RUN_CURRICULUM = Flag("--dry-run", "dry_run", "resolve every stage (verl: export data, validate the override set) without training",
                           switch=True)

RECIPES: dict[str, Recipe] = {r.name: r for r in [
    Recipe("data convert", "read a foreign corpus into canonical parquet shards; bad records go to OUT/quarantine/ with a reason code",
           "pipelines.data_jobs:ConvertConfig", "pipelines.data_jobs:run_convert", "data/convert.yaml", _CONVERT_FLAGS,
           epilog=f"{_listing('formats', CONVERT_FORMATS)}\n\n{IMAGE_PATHS_HELP}"),
    Recipe("data export", "write canonical shards in a training framework's format (streamed as a Ray Data job for large inputs)",
           "pipelines.data_jobs:ExportConfig", "pipelines.data_jobs:run_export", "data/export.yaml", _EXPORT_FLAGS,
           epilog=_listing("formats", EXPORT_FORMATS)),
    Recipe("data pass-rates", "verl's rollout dump (trainer.rollout_data_dir) -> pass rates per sample id for `store build`",
           "pipelines.data_jobs:PassRatesConfig", "pipelines.data_jobs:run_pass_rates", "data/pass_rates.yaml", _PASS_RATES_FLAGS),
    Recipe("data synth", "render the synthetic verifiable corpus to canonical parquet shards",
           "pipelines.warmstart:SynthJobConfig", "pipelines.warmstart:run_synth", "synth/default.yaml", (_OUT_CORPUS,)),
    Recipe("model build-tiny", "build the tiny Qwen2.5-VL offline (tokenizer from the synthetic corpus, random weights)",
           "pipelines.warmstart:BuildTinyConfig", "pipelines.warmstart:run_build_tiny", "warmstart/tiny.yaml", (_OUT_MODEL,)),
    Recipe("model warmstart", "build the tiny Qwen2.5-VL offline and SFT it on the synthetic corpus (cached)",
           "rl.warmstart:WarmstartConfig", "pipelines.warmstart:run_warmstart", "warmstart/tiny.yaml"),
    Recipe("generate", "Ray Data pipeline: shards -> vLLM/HF actor pool -> verified generations",
           "pipelines.generate:GenerateJobConfig", "pipelines.generate:run_generate", "generate/default.yaml"),
    Recipe("score pism", "PISM difficulty on Ray Data: masked multi-ratio generation on vLLM/HF actor pools, resumable",
           "pipelines.pism:PismJobConfig", "pipelines.pism:run_pism", "pism/tiny.yaml"),
    Recipe("score cmab", "CMAB difficulty on Ray Data: attention balance from one lean forward per verified answer, resumable",
           "pipelines.cmab:CmabJobConfig", "pipelines.cmab:run_cmab", "cmab/tiny.yaml"),
    Recipe("eval", "before/after accuracy per task and pass@k (unbiased, n seeded draws per item) on a held-out split, resumable",
           "pipelines.evaluate:EvalJobConfig", "pipelines.evaluate:run_eval", "eval/default.yaml"),
    Recipe("data rejection-sample", "rejection-sampling SFT data: n sampled responses per item, keep the verified ones as canonical shards",
           "pipelines.rejection_sample:RejectionSampleConfig", "pipelines.rejection_sample:run_rejection_sample", "rejection/default.yaml"),
    Recipe("data reformulate", "Curr-ReFT stages from open samples: balanced yes/no judge and letter-choice variants with verifier-checked distractors",
           "pipelines.shaping.reformulate:ReformulateJobConfig", "pipelines.shaping.reformulate:run_reformulate", "reformulate/default.yaml"),
    Recipe("store build", "join PISM/CMAB/pass-rate scores onto canonical samples: hive-partitioned difficulty store, provenance per run",
           "pipelines.shaping.store:StoreConfig", "pipelines.shaping.store:run_store", "store/default.yaml"),
    Recipe("select", "named selections and GRPO-only / SFT+GRPO arms from a difficulty store (presets grpo_only, sft_grpo, paper_table4)",
           "pipelines.shaping.select:SelectJobConfig", "pipelines.shaping.select:run_select", "select/default.yaml"),
    Recipe("mix build", "MoDoMoDo domain mixture: weights + concat/interleave strategy + budget, optional easy->hard curriculum order",
           "pipelines.shaping.mix:MixJobConfig", "pipelines.shaping.mix:run_mix", "mix/default.yaml"),
    Recipe("mix search", "mixture search from past (weights, score) runs: seed designs, heuristics, Scheffe surrogate proposal with uncertainty, the next runs to launch",
           "pipelines.shaping.mix:MixSearchConfig", "pipelines.shaping.mix:run_mixture_search", "mix/search.yaml"),
    Recipe("train grpo", "GRPO: verl on a cluster (ray job submit; validated override set) or TRL on this machine",
           "rl.grpo.config:GrpoJobConfig", "rl.grpo.run:run_grpo", "grpo/tiny_trl.yaml", (_BACKEND, _DRY_RUN_GRPO)),
    Recipe("train sft", "SFT on Ray Train (CPU workers: DDP over gloo; GPU workers: DDP or DeepSpeed ZeRO); warmstart: references for model and data",
           "rl.sft.config:SFTConfig", "rl.train_sft:run_sft_job", "sft/tiny.yaml"),
    Recipe("train curriculum", "SFT / GRPO stages as one resumable job, each from the previous stage's final model (per-stage data, overrides, stop criteria)",
           "rl.curriculum.config:CurriculumConfig", "rl.curriculum.run:run_curriculum", "curriculum/tiny_sft_grpo.yaml", (_DRY_RUN_CURRICULUM,)),
    Recipe("demo", "the main job end to end on the embedded default",
           "pipelines.demo:DemoConfig", "pipelines.demo:run_demo", "demo.yaml"),
]}
