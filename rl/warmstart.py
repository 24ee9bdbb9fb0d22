"""Recipe: the embedded default model. Synthetic corpus -> tiny Qwen2.5-VL -> SFT (Ray Train) -> eval.

Every artifact is cached under the gradus cache keyed by the hash of the config that made it,
so `make demo`, `make test` and benchmarks build it once per machine and reuse it afterwards.
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine import __version__
from engine.config import ConfigError, config_hash, to_dict
from engine.data.response import format_response
from engine.data.sample import IMAGE_PLACEHOLDER
from engine.data.shards import iter_samples
from engine.generation.base import GenerationConfig
from engine.model.tiny import TinyModelConfig, build_tiny_model
from engine.paths import cache_root
from engine.publish import publish_dir
from engine.synth.config import SynthConfig
from engine.synth.corpus import GENERATOR_VERSION
from rl.sft.config import LATER_FIELDS, SFTConfig


@dataclass
class WarmstartEval:
    split: str = "test"
    max_per_family: int = 100
    batch_size: int = 64
    max_new_tokens: int = 24


@dataclass
class WarmstartAcceptance:
    """The spread difficulty scoring needs: neither an oracle nor a model that answers nothing."""

    overall_min: float = 0.30
    overall_max: float = 0.85
    some_family_above: float = 0.70
    some_family_below: float = 0.40


@dataclass
class WarmstartConfig:
    synth: SynthConfig = field(default_factory=SynthConfig)
    model: TinyModelConfig = field(default_factory=TinyModelConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    eval: WarmstartEval = field(default_factory=WarmstartEval)
    acceptance: WarmstartAcceptance = field(default_factory=WarmstartAcceptance)
    cache_dir: str = ""  # default: $GRADUS_CACHE or ~/.cache/gradus

    def validate(self) -> None:
        if self.eval.max_per_family < 1:
            raise ConfigError("eval.max_per_family must be >= 1")


RECORD_NAME = "warmstart.json"  # beside the model: accuracy, timings, acceptance, provenance, build machine
# CPU flags that decide which float kernels torch, MKL and oneDNN run (and so a build's last bits).
KERNEL_FLAG_PREFIXES = ("avx2", "avx512", "amx")


def read_record(model_dir: str | Path) -> dict | None:
    """The warm-start record of a model folder; None for a model gradus did not warm-start (a user's)."""
    path = Path(model_dir) / RECORD_NAME
    return json.loads(path.read_text()) if path.is_file() else None


def build_machine() -> dict:
    """What a build's exact weights depend on besides its config: the CPU (model name and the
    instruction-set flags kernels are chosen by), the torch build, and the CPU capability torch
    dispatches its own kernels to. Recorded, not part of the cache key."""
    import torch

    model, flags = cpu_info()
    return {
        "cpu_model": model,
        "cpu_flags": sorted(f for f in flags if f.startswith(KERNEL_FLAG_PREFIXES)),
        "torch": torch.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def cpu_info(path: str = "/proc/cpuinfo") -> tuple[str, set[str]]:
    """(model name, flags) of the first CPU in /proc/cpuinfo; without that file (not Linux) the
    platform's processor string and no flags."""
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return platform.processor(), set()
    model, flags = "", set()
    for line in lines:
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:  # Features: arm64's name for them
            flags = set(value.split())
    return model, flags


def _corpus_texts(corpus_dir: Path, response_template: str):
    for s in iter_samples(corpus_dir / "train"):
        for m in s.messages:
            yield m.content.replace(IMAGE_PLACEHOLDER, "")
        yield format_response(s.answer, response_template)


def ensure_corpus(cfg: SynthConfig, root: Path) -> Path:
    from engine.synth import build_corpus

    out = root / "corpus" / f"synth-{config_hash(cfg)}-g{GENERATOR_VERSION}"
    if not (out / "manifest.json").exists():
        with publish_dir(out) as tmp:
            build_corpus(cfg, tmp)
    return out


def evaluate_model(model_path: Path, corpus_dir: Path, ev: WarmstartEval) -> dict:
    """Greedy accuracy at mask ratio 0 on the eval split, per family (HF backend, batched)."""
    from engine.evaluation import evaluate_samples
    from engine.generation.hf_backend import HFBackend

    per_family: dict[str, int] = {}
    samples = []
    for s in iter_samples(corpus_dir / ev.split):
        if per_family.get(s.task, 0) < ev.max_per_family:
            per_family[s.task] = per_family.get(s.task, 0) + 1
            samples.append(s)
    backend = HFBackend(GenerationConfig(backend="hf", model_path=str(model_path), hf_batch_size=ev.batch_size, max_new_tokens=ev.max_new_tokens))
    report = evaluate_samples(backend, samples)
    if report.errors:  # an acceptance decided on items that could not be judged would mean nothing
        first = report.errors[0]
        raise RuntimeError(f"warm-start evaluation could not judge {len(report.errors)} of {len(samples)} samples "
                           f"(first: {first.id}: {first.error}: {first.error_detail})")
    return {**report.summary(), "examples": [vars(i) for i in report.items[:: max(1, len(report.items) // 12)]]}


def accepted(report: dict, acc: WarmstartAcceptance) -> tuple[bool, str]:
    fam = report["per_family"].values()
    checks = [
        (acc.overall_min <= report["overall_acc"] <= acc.overall_max, f"overall {report['overall_acc']:.3f} in [{acc.overall_min}, {acc.overall_max}]"),
        (max(fam) > acc.some_family_above, f"best family {max(fam):.3f} > {acc.some_family_above}"),
        (min(fam) < acc.some_family_below, f"worst family {min(fam):.3f} < {acc.some_family_below}"),
    ]
    return all(ok for ok, _ in checks), "; ".join(("ok: " if ok else "FAILED: ") + why for ok, why in checks)


def build_initial_model(cfg: WarmstartConfig, out_dir: str | Path) -> Path:
    """The randomly initialised tiny model, its tokenizer trained on the synthetic corpus's text."""
    corpus = ensure_corpus(cfg.synth, cache_root(cfg.cache_dir))
    out = Path(out_dir)
    shutil.rmtree(out, ignore_errors=True)
    return build_tiny_model(cfg.model, _corpus_texts(corpus, cfg.sft.response_template), out)


def cache_key(cfg: WarmstartConfig) -> str:
    """The warm-start's identity: its config without `cache_dir` (where it is cached is not what it is);
    SFT fields added later count only when set away from their defaults (rl/sft/config.py LATER_FIELDS)."""
    data = to_dict(dataclasses.replace(cfg, cache_dir=""))
    default = to_dict(SFTConfig())
    for name in LATER_FIELDS:
        if data["sft"][name] == default[name]:
            del data["sft"][name]
    return config_hash(data)


def ensure_warmstart(cfg: WarmstartConfig, *, force: bool = False) -> Path:
    """The warm-started model folder for `cfg`, building whatever is not cached yet."""
    cfg.validate()
    root = cache_root(cfg.cache_dir)
    key = cache_key(cfg)
    final = root / "models" / f"warmstart-{key}-g{GENERATOR_VERSION}"
    if (final / RECORD_NAME).exists() and not force:
        return final
    timings: dict[str, float] = {}
    t0 = time.time()
    corpus = ensure_corpus(cfg.synth, root)
    timings["corpus_s"] = time.time() - t0

    t1 = time.time()
    init_dir = build_initial_model(cfg, root / "models" / f"tiny-init-{key}")
    timings["build_s"] = time.time() - t1

    t2 = time.time()
    from rl.sft.ray_train import run_sft

    sft_cfg = dataclasses.replace(cfg.sft, model_path=str(init_dir), train_data=str(corpus / "train"), output_dir=str(final))
    meta = {"model_id": cfg.model.model_id, "warmstart_config_hash": key, "corpus": str(corpus)}
    sft_summary = run_sft(sft_cfg, parent_meta=meta)
    timings["sft_s"] = time.time() - t2

    t3 = time.time()
    report = evaluate_model(final, corpus, cfg.eval)
    timings["eval_s"] = time.time() - t3
    ok, why = accepted(report, cfg.acceptance)
    record = {
        "model_id": cfg.model.model_id,
        "config_hash": key,
        "seed": cfg.sft.seed,
        "gradus_version": __version__,
        "overall_acc": report["overall_acc"],
        "per_family": report["per_family"],
        "eval_split": cfg.eval.split,
        "eval_n": report["n"],
        "accepted": ok,
        "acceptance": why,
        "wall_s": round(time.time() - t0, 1),
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "sft_steps": sft_summary["steps"],
        "final_loss": sft_summary["loss_curve"][-1]["loss"] if sft_summary["loss_curve"] else None,
        "examples": report["examples"],
        "build_machine": build_machine(),  # the same config rebuilds these weights only on the same kernels
        "config": to_dict(cfg),
    }
    (final / RECORD_NAME).write_text(json.dumps(record, indent=2))
    shutil.rmtree(init_dir, ignore_errors=True)
    return final
