"""GRPO on one machine: TRL's GRPOTrainer on CPU or one GPU, same data / reward / algorithm as verl.

`run_trl_grpo(cfg)`:
1. resolves the model (`model_path`, or `warmstart:<config>` for the embedded default) and the data
   (canonical shards, optionally a task selection, exported to the verl parquet by rl/grpo/data.py;
   a verl parquet is read as is);
2. turns the verl rows into TRL's conversational multimodal rows (rl/grpo/trl_dataset.py) and the
   reward entrypoint into a TRL reward function (rl/grpo/trl_reward.py);
3. maps the algorithm settings onto `GRPOConfig` (`trl_args`; table in docs/grpo.md) and trains,
   resuming from the last checkpoint under `<output_dir>/checkpoints` when `trl.save_every` > 0;
4. writes under output_dir: `model/` (HF folder: weights, config, processor, gradus_model.json),
   `metrics.jsonl` (one line per optimizer step, with the round's group signal: informative share,
   zero-signal rollouts, mean |advantage|; rl/grpo/group_signal.py), `reward_curve.png`, `summary.json`, an
   offline wandb run (engine/tracking.py), and `rollouts/` + `pass_rates.parquet` (every rollout's
   verdict, pass rate per sample id for the difficulty store: rl/grpo/rollout_log.py).

summary.json's `reward_first` / `reward_last` are the mean training reward (TRL's `reward`: the
batch mean of compute_score's `score`) over the first / last `reward_window` steps, with
reward_window = clamp(steps // 5, 1, 10): the first and last fifth of the run, at most 10 steps.
Its `signal` section summarizes the group signal the same way (mean over steps, first / last
window, rollouts and zero-signal rollouts summed over the run).
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from engine import __version__
from engine.config import ConfigError, config_hash, to_dict
from engine.paths import repo_path
from engine.publish import publish_dir
from rl.grpo.config import GrpoJobConfig
from rl.grpo.group_signal import COUNTED, reward_window

SIGNAL = "gradus/"  # prefix of the metrics the trainer hook adds to TRL's log (rl/grpo/group_signal.py)
METRIC_KEYS = {  # metrics.jsonl name <- TRL log key
    "reward": "reward",  # batch mean of the scored rewards (TRL's; the hook does not log it twice)
    "reward_std": "reward_std",  # their sd over the batch (TRL's)
    "acc": "acc",
    "format": "format",
    "kl": "kl",
    "loss": "loss",
    "entropy": "entropy",
    "grad_norm": "grad_norm",
    "learning_rate": "learning_rate",
    "completion_length": "completions/mean_length",
    "frac_reward_zero_std": "frac_reward_zero_std",
    "clip_ratio": "clip_ratio/region_mean",
    **{name: SIGNAL + name for name in ("informative_share", "zero_signal_rollouts", "rollouts", "unscored_rollouts",
                                         "adv_abs_mean", "reward_std_in_group")},
}
MODEL_DIR = "model"
CHECKPOINT_DIR = "checkpoints"


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("grpo.trl.device=cuda but no CUDA device is visible")
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"grpo.trl.device {device!r} not in (auto, cpu, cuda)")
    return device


def validate_trl(cfg: GrpoJobConfig) -> None:
    """What the TRL backend needs beyond GrpoJobConfig.validate (clear errors before anything loads)."""
    cfg.validate()
    if cfg.backend != "trl":
        raise ConfigError(f"run_trl_grpo: grpo.backend is {cfg.backend!r}, not 'trl'")
    t = cfg.trl
    if t.dtype not in ("float32", "bfloat16", "float16"):
        raise ConfigError(f"grpo.trl.dtype {t.dtype!r} not in (float32, bfloat16, float16)")
    if t.torch_threads < 0 or t.log_every < 1 or t.save_every < 0:
        raise ConfigError("grpo.trl: need torch_threads >= 0, log_every >= 1, save_every >= 0")
    if cfg.data.max_prompt_length < 1 or cfg.data.max_response_length < 1:
        raise ConfigError("grpo.data: max_prompt_length and max_response_length must be >= 1")
    resolve_device(t.device)


def lr_scheduler_type(schedule: str, warmup_ratio: float) -> str:
    """transformers' scheduler name for algorithm.lr_schedule: its "constant" ignores warmup steps, its cosine
    warms up and decays to 0 as verl's does."""
    if schedule == "constant":
        return "constant_with_warmup" if warmup_ratio else "constant"
    return schedule


def trl_args(cfg: GrpoJobConfig, out_dir: Path, device: str):
    """GrpoJobConfig -> GRPOConfig (the mapping docs/grpo.md tabulates).

    One optimizer step = one mini-batch of `mini_batch_prompts * group_size` completions; one
    generation round = `prompts_per_step * group_size` completions, i.e. prompts_per_step /
    mini_batch_prompts optimizer steps (verl's ppo_mini_batch_size); `algorithm.steps` counts
    generation rounds as verl's total_training_steps does.
    """
    from trl import GRPOConfig

    a = cfg.algorithm
    mini = a.mini_batch_prompts or a.prompts_per_step
    updates_per_round = a.prompts_per_step // mini
    return GRPOConfig(
        output_dir=str(out_dir / CHECKPOINT_DIR),
        # batch geometry
        num_generations=a.group_size,
        per_device_train_batch_size=mini * a.group_size,
        gradient_accumulation_steps=1,
        generation_batch_size=a.prompts_per_step * a.group_size,
        num_iterations=1,  # verl ppo_epochs=1
        max_steps=a.steps * updates_per_round,
        # optimisation
        learning_rate=a.lr,
        lr_scheduler_type=lr_scheduler_type(a.lr_schedule, a.warmup_ratio),
        warmup_steps=round(a.warmup_ratio * a.steps * updates_per_round),  # an int: transformers reads a float < 1 as a ratio
        weight_decay=0.01,  # verl actor optim default
        max_grad_norm=1.0,  # verl actor grad_clip default
        beta=a.kl_coef,  # k3 estimator = verl's low_var_kl
        epsilon=a.clip_ratio,
        entropy_coef=a.entropy_coef,
        loss_type="dapo",  # token-mean over the batch = verl's loss_agg_mode token-mean
        scale_rewards="group",  # verl norm_adv_by_std_in_grpo=True
        # rollout
        temperature=a.temperature,
        top_p=a.top_p,
        max_completion_length=cfg.data.max_response_length,
        shuffle_dataset=cfg.data.shuffle,
        # machine
        use_cpu=device == "cpu",
        bf16=cfg.trl.dtype == "bfloat16",
        fp16=cfg.trl.dtype == "float16",
        gradient_checkpointing=device == "cuda",
        model_init_kwargs={"dtype": cfg.trl.dtype, "local_files_only": True},
        dataloader_num_workers=0,
        seed=cfg.seed,
        data_seed=cfg.seed,
        # logging and checkpoints: every step is logged (metrics.jsonl), console lines every log_every
        logging_steps=1,
        report_to="none",
        disable_tqdm=False,
        save_strategy="steps" if cfg.trl.save_every else "no",
        save_steps=cfg.trl.save_every * updates_per_round if cfg.trl.save_every else 500,
        save_total_limit=2,
        save_only_model=False,  # optimizer + scheduler + RNG: an exact resume
        log_completions=False,
        remove_unused_columns=False,
        disable_dropout=True,
    )


def last_checkpoint(out_dir: Path) -> Path | None:
    from transformers.trainer_utils import get_last_checkpoint

    ckpt = out_dir / CHECKPOINT_DIR
    if not ckpt.is_dir():
        return None
    found = get_last_checkpoint(str(ckpt))
    return Path(found) if found else None


def _checkpoint_step(path: Path) -> int:
    return int(path.name.rsplit("-", 1)[-1])


def read_metrics(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _metrics_callback(path: Path, log_every: int, resumed_rows: list[dict]):
    from transformers import TrainerCallback

    class MetricsCallback(TrainerCallback):
        """One metrics.jsonl line per optimizer step; a progress bar and a console line every log_every steps.

        Replaces transformers' ProgressCallback, which prints every log dict in full."""

        def __init__(self):
            self.offset = resumed_rows[-1]["wall_s"] if resumed_rows else 0.0
            self.started = time.time()
            self.last = self.started
            self.bar = None
            path.write_text("".join(json.dumps(r) + "\n" for r in resumed_rows))

        def on_train_begin(self, args, state, control, **kwargs):
            from tqdm import tqdm

            self.started = self.last = time.time()
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="grpo", unit="step", dynamic_ncols=True)

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.close()
                self.bar = None

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or "reward" not in logs:
                return
            now = time.time()
            row: dict[str, Any] = {"step": state.global_step}
            for name, key in METRIC_KEYS.items():
                value = logs.get(key)
                if isinstance(value, (int, float)):
                    row[name] = int(round(value)) if name in COUNTED else round(float(value), 6)
            row["step_s"] = round(now - self.last, 3)
            row["wall_s"] = round(self.offset + now - self.started, 3)
            self.last = now
            with path.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            if state.global_step % log_every == 0 or state.global_step == state.max_steps:
                line = (f"[grpo] step {state.global_step}/{state.max_steps} reward {row.get('reward', float('nan')):.3f} "
                        f"acc {row.get('acc', float('nan')):.3f} kl {row.get('kl', 0.0):.4f} loss {row.get('loss', 0.0):.4f} "
                        f"len {row.get('completion_length', 0.0):.1f} informative {row.get('informative_share', float('nan')):.2f} "
                        f"wall {row['wall_s']:.0f}s")
                if self.bar is not None:
                    self.bar.write(line, file=sys.stderr)
                else:
                    print(line, file=sys.stderr, flush=True)

    return MetricsCallback()


def signal_trainer_class():
    """TRL's GRPOTrainer plus one hook: every generation round's group signal (rl/grpo/group_signal.py)
    goes into TRL's log as gradus/<name>, so metrics.jsonl carries it per step.

    Computed here rather than read off TRL's log: TRL's frac_reward_zero_std counts a group with
    fewer than two scored rewards as informative (its nanstd is NaN there) though it gives no
    gradient, and TRL logs no mean |advantage|. The rewards are what `_calculate_rewards` returned,
    combined as TRL combines them (weighted sum; all-None rows unscored), in TRL's layout (each
    prompt's completions consecutive); the advantages are the ones the loss receives. This backend
    runs one process (CPU or one GPU), where those advantages are the whole round's."""
    import torch
    from trl import GRPOTrainer

    from rl.grpo.group_signal import round_signal

    class SignalGRPOTrainer(GRPOTrainer):
        online = None  # rl/grpo/trl_sampler.py OnlinePrompts when sampler.kind is online: it picks each round's prompts

        def _save_checkpoint(self, model, trial):
            if self.online is not None:  # first: a checkpoint the trainer finished always holds the sampler's state
                self.online.save(Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}")
            super()._save_checkpoint(model, trial)

        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
            per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
            self._round_rewards = per_func
            return per_func

        def _generate_and_score_completions(self, inputs):
            if self.online is not None and self.model.training:
                inputs = self.online.choose(inputs)
            out = super()._generate_and_score_completions(inputs)
            if self.model.training and self.accelerator.num_processes == 1:
                per_func = self._round_rewards
                rewards = (per_func * self.reward_weights.to(per_func.device).unsqueeze(0)).nansum(dim=1)
                rewards[torch.isnan(per_func).all(dim=1)] = torch.nan
                adv = out["advantages"]  # (completions,) in GRPO; per-token shapes come only from subclasses
                row = round_signal([None if math.isnan(r) else r for r in rewards.tolist()], self.num_generations,
                                   adv.tolist() if adv.dim() == 1 else None)
                for name, key in METRIC_KEYS.items():
                    if key.startswith(SIGNAL):
                        value = row.get(name)
                        self._metrics["train"][key].append(float("nan") if value is None else float(value))  # TRL's log skips NaN
            return out

    return SignalGRPOTrainer


def plot_curve(rows: list[dict], out: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    reward = [r.get("reward", float("nan")) for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=120)
    ax.plot(steps, reward, color="#9ab", lw=1, marker=".", label="mean reward (per step)")
    k = reward_window(len(rows))
    if len(rows) >= 2 * k and k > 1:
        smooth = [sum(reward[max(0, i - k + 1): i + 1]) / len(reward[max(0, i - k + 1): i + 1]) for i in range(len(reward))]
        ax.plot(steps, smooth, color="#c33", lw=2, label=f"moving mean ({k} steps)")
    if any("acc" in r for r in rows):
        ax.plot(steps, [r.get("acc", float("nan")) for r in rows], color="#3a3", lw=1, ls="--", label="verifier acc")
    ax.set_xlabel("step")
    ax.set_ylabel("reward")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def summarize_curve(rows: list[dict]) -> dict[str, Any]:
    if not rows:
        return {"reward_first": None, "reward_last": None, "reward_window": 0}
    k = reward_window(len(rows))
    mean = lambda xs: round(sum(xs) / len(xs), 4) if xs else None  # noqa: E731
    first, last = rows[:k], rows[-k:]
    return {
        "reward_first": mean([r["reward"] for r in first]),
        "reward_last": mean([r["reward"] for r in last]),
        "reward_window": k,
        "acc_first": mean([r["acc"] for r in first if "acc" in r]),
        "acc_last": mean([r["acc"] for r in last if "acc" in r]),
        "kl_last": mean([r["kl"] for r in last if "kl" in r]),
    }


def _publish_model(trainer, processor, parent: Path, out: Path, meta: dict) -> Path:
    """Final HF folder (weights, config, generation config, processor + chat template), atomically.

    Inference settings come back from the parent: training turns the KV cache off in the config and
    TRL rewrites the generation config with its sampling settings."""
    from transformers import GenerationConfig

    final = out / MODEL_DIR
    model = trainer.accelerator.unwrap_model(trainer.model)
    model.config.use_cache = True
    if (parent / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(str(parent), local_files_only=True)
    with publish_dir(final) as tmp:
        trainer.save_model(str(tmp))
        processor.save_pretrained(str(tmp))
        for stale in ("training_args.bin",):
            (tmp / stale).unlink(missing_ok=True)
        (tmp / "gradus_model.json").write_text(json.dumps(meta, indent=2))
    return final


def sampler_summary(cfg: GrpoJobConfig, online, out: Path, provenance: dict) -> dict:
    """The online sampler's prior, draws and posterior (written to sampler_posterior.parquet and, with
    sampler.write_back, into the store as pass_rate@<tag>); {"kind": "uniform"} otherwise."""
    if online is None:
        return {"kind": cfg.sampler.kind}
    from rl.sampler.writeback import POSTERIOR, write_back, write_posterior

    drawn = [sid for ids in online.drawn for sid in ids]
    result = {"kind": "online", "prior": online.report, "rounds_this_process": len(online.drawn),
              "distinct_prompts_this_process": len(set(drawn)),
              "posterior": str(write_posterior(online.sampler, out / POSTERIOR, provenance))}
    if cfg.sampler.write_back:
        result["write_back"] = write_back(cfg.sampler.store, cfg.sampler.write_back, Path(result["posterior"]))
    return result


def run_trl_grpo(cfg: GrpoJobConfig, callbacks: Sequence[Any] = ()) -> dict:
    """Train with TRL's GRPOTrainer; returns the summary written to <output_dir>/summary.json.

    `callbacks`: extra transformers TrainerCallbacks (e.g. a curriculum stage's stop criterion, rl/curriculum/stops.py)."""
    validate_trl(cfg)
    started = time.time()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers import AutoProcessor

    from engine.tracking import log_summary
    from rl.grpo.data import verl_parquet
    from rl.grpo.group_signal import summarize_signal
    from rl.grpo.rollout_log import PASS_RATES, ROLLOUTS_DIR, RolloutLog, read_rollouts, refresh
    from rl.sources import resolve_data, resolve_model
    from rl.grpo.trl_dataset import build_dataset
    from rl.grpo.trl_reward import VerlRewardFunction, load_entrypoint
    from rl.grpo.trl_sampler import OnlinePrompts, chain
    from rl.reward import reward_config

    if cfg.trl.torch_threads:
        torch.set_num_threads(cfg.trl.torch_threads)
    device = resolve_device(cfg.trl.device)
    out = Path(cfg.output_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)

    model_path, model_id = resolve_model(cfg.model_path)
    reward_cfg_path = str(repo_path(cfg.reward.config)) if cfg.reward.config else ""
    reward_cfg = reward_config(reward_cfg_path or None)  # parsed now: a bad reward YAML fails before training
    compute_score = load_entrypoint(str(repo_path(cfg.reward.path)) if cfg.reward.path else "", cfg.reward.name)
    reward_fn = VerlRewardFunction(compute_score, reward_cfg_path or None)  # as verl's reward_kwargs.reward_config

    data_dir = out / "data"
    train_src = resolve_data(cfg.data.train, data_dir, "train")
    train_file = verl_parquet(str(train_src), data_dir, "train", cfg.data.image_max_pixels)

    processor = AutoProcessor.from_pretrained(str(model_path), local_files_only=True, padding_side="left")
    processor.tokenizer.padding_side = "left"
    dataset, data_stats = build_dataset(train_file, processor, max_prompt_length=cfg.data.max_prompt_length,
                                        max_pixels=cfg.data.image_max_pixels)
    if len(dataset) < cfg.algorithm.prompts_per_step:
        raise ConfigError(f"grpo: {len(dataset)} training prompts < algorithm.prompts_per_step={cfg.algorithm.prompts_per_step}")

    args = trl_args(cfg, out, device)
    resume = last_checkpoint(out) if cfg.trl.save_every else None
    online = OnlinePrompts(cfg.sampler, dataset, cfg.seed, cfg.algorithm.prompts_per_step, cfg.algorithm.group_size) \
        if cfg.sampler.kind == "online" else None
    if online is not None and resume:
        online.load(resume)
    metrics_path = out / "metrics.jsonl"
    kept = [r for r in read_metrics(metrics_path) if r["step"] <= _checkpoint_step(resume)] if resume else []
    callback = _metrics_callback(metrics_path, cfg.trl.log_every, kept)
    rollout_log = RolloutLog(out / ROLLOUTS_DIR, _checkpoint_step(resume) if resume else None)  # same resume rule as metrics
    reward_fn.on_scored = chain(rollout_log.record, online.on_scored if online else None)
    print(f"[grpo] trl backend on {device}: model {model_path}, {len(dataset)} prompts ({train_file}), "
          f"{cfg.algorithm.steps} steps x {cfg.algorithm.prompts_per_step} prompts x {cfg.algorithm.group_size} responses"
          + (f", resuming from {resume}" if resume else ""), file=sys.stderr, flush=True)

    trainer = signal_trainer_class()(
        model=str(model_path),
        reward_funcs=[reward_fn],
        args=args,
        train_dataset=dataset,
        processing_class=processor,
        callbacks=[callback, *callbacks],
    )
    trainer.online = online
    from transformers.trainer_callback import ProgressCallback

    trainer.remove_callback(ProgressCallback)
    train_started = time.time()
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    train_s = time.time() - train_started

    rows = read_metrics(metrics_path)
    summary: dict[str, Any] = {
        "job": "train grpo",
        "backend": "trl",
        "device": device,
        **summarize_curve(rows),
        "signal": summarize_signal(rows, reward_window(len(rows))),
        "steps": rows[-1]["step"] if rows else 0,
        "wall_s": round(time.time() - started, 1),
        "train_s": round(train_s, 1),
        "step_s_mean": round(sum(r["step_s"] for r in rows) / len(rows), 3) if rows else None,
        "resumed_from": str(resume) if resume else None,
        "model_id": model_id,
        "model_path": str(model_path),
        "config_hash": config_hash(cfg),
        "seed": cfg.seed,
        "gradus_version": __version__,
        "train_data": str(train_file),
        "data": data_stats,
        "reward_config": reward_cfg_path or "RewardConfig()",
        "trl_args": {k: getattr(args, k) for k in ("num_generations", "generation_batch_size", "per_device_train_batch_size",
                                                    "gradient_accumulation_steps", "max_steps", "learning_rate", "beta",
                                                    "epsilon", "temperature", "top_p", "max_completion_length", "loss_type")},
    }
    summary["pass_rates"] = refresh(read_rollouts(out / ROLLOUTS_DIR), out / PASS_RATES,
                                    {k: summary[k] for k in ("model_id", "config_hash", "seed", "gradus_version")}, stage=out.name, backend="trl")
    summary["sampler"] = sampler_summary(cfg, online, out, {k: summary[k] for k in ("model_id", "config_hash", "seed", "gradus_version")})
    meta = {"model_id": model_id, "stage": "grpo", "parent": str(model_path), "backend": "trl",
            "grpo_config": to_dict(cfg), **{k: summary[k] for k in ("config_hash", "seed", "gradus_version", "steps",
                                                                             "reward_first", "reward_last")}}
    summary["output_model"] = str(_publish_model(trainer, processor, model_path, out, meta))
    curve = plot_curve(rows, out / "reward_curve.png", f"GRPO (trl) {model_id}: mean reward per step") if rows else None
    summary["files"] = {"model": summary["output_model"], "metrics": str(metrics_path),
                        "reward_curve": str(curve) if curve else None, "summary": str(out / "summary.json"),
                        "pass_rates": summary["pass_rates"]["file"], "rollouts": str(out / ROLLOUTS_DIR)}
    summary["wandb_run"] = log_summary(cfg.wandb, out, "grpo", to_dict(cfg), summary, [curve] if curve else [])
    summary["wall_s"] = round(time.time() - started, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary
