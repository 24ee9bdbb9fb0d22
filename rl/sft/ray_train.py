"""SFT on Ray Train: TorchTrainer workers stream canonical shards from Ray Data and train the VLM.

One code path for one CPU worker here and N GPU workers on a cluster: DDP via prepare_model (gloo
on CPU, NCCL on GPUs), or DeepSpeed ZeRO on GPU workers when `sft.deepspeed.enabled`
(deepspeed.initialize inside each worker; Ray Train sets up the process group). The final weights
come back as a Ray Train checkpoint and are saved as a plain HF folder.

Early stop (`stop_loss_at_most`): after every optimizer step the loss is averaged over the workers
(all_reduce), and the loop ends once the mean of the last `stop_window` steps is <= the bar; every
worker takes the same decision, so none waits on a collective the others left.
"""
from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from pathlib import Path

from engine import __version__
from engine.ray_session import init_ray
from engine.config import ConfigError, config_hash, from_dict, to_dict
from engine.data.shards import shard_paths
from engine.paths import repo_path
from engine.publish import publish_dir
from rl.sft.config import SFTConfig


def _lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def deepspeed_config(cfg: SFTConfig) -> dict:
    """The DeepSpeed config dict for `cfg` (micro batch = batch_size per worker, no accumulation).

    The optimizer is AdamW built by DeepSpeed (DeepSpeedCPUAdam under offload_optimizer) over the
    loop's parameter groups (the vision tower's own lr); clipping is DeepSpeed's; the loop's
    warmup+cosine LambdaLR is handed to deepspeed.initialize. `deepspeed.config` (a JSON file) is
    merged on top, key by key."""
    ds = cfg.deepspeed
    zero: dict = {"stage": ds.zero_stage, "overlap_comm": ds.overlap_comm, "contiguous_gradients": ds.contiguous_gradients,
                  "reduce_bucket_size": ds.reduce_bucket_size}
    if ds.zero_stage in (1, 2):
        zero["allgather_bucket_size"] = ds.allgather_bucket_size
    if ds.zero_stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = ds.stage3_gather_16bit_weights_on_model_save
    if ds.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    if ds.offload_param:
        zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    config = {
        "train_micro_batch_size_per_gpu": cfg.batch_size,
        "gradient_accumulation_steps": 1,
        "gradient_clipping": cfg.grad_clip,
        "optimizer": {"type": "AdamW", "params": {"lr": cfg.lr, "weight_decay": cfg.weight_decay, "betas": [0.9, 0.999], "eps": 1e-8}},
        "zero_optimization": zero,
        "bf16": {"enabled": ds.dtype == "bfloat16"},
        "fp16": {"enabled": ds.dtype == "float16"},
        "steps_per_print": 1_000_000_000,
        "wall_clock_breakdown": False,
    }
    if ds.config:
        file = repo_path(ds.config)
        if not file.is_file():
            raise ConfigError(f"sft.deepspeed.config {ds.config} not found ({file})")
        config = _merge(config, json.loads(file.read_text()))
    return config


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def validate_deepspeed(config: dict) -> None:
    """DeepSpeed's own config parser (pydantic: unknown keys, bad stages, batch arithmetic) on the dict; CPU-safe."""
    try:
        from deepspeed.runtime.config import DeepSpeedConfig
    except ImportError as exc:
        raise ConfigError("sft.deepspeed.enabled with use_gpu needs the deepspeed package (pip install deepspeed)") from exc
    try:
        DeepSpeedConfig(dict(config))
    except Exception as exc:  # pydantic ValidationError, AssertionError on batch sizes
        raise ConfigError(f"sft.deepspeed: DeepSpeed rejects the config: {exc}") from exc


class LossStop:
    """`stop_loss_at_most` over the last `stop_window` steps' losses (already averaged over workers)."""

    def __init__(self, at_most: float, window: int):
        self.at_most, self.window, self.losses = at_most, window, []

    def update(self, loss: float) -> bool:
        self.losses = (self.losses + [loss])[-self.window:]
        return bool(self.at_most) and len(self.losses) == self.window and sum(self.losses) / self.window <= self.at_most

    @property
    def mean(self) -> float:
        return sum(self.losses) / len(self.losses) if self.losses else float("nan")


def _train_loop(loop_config: dict) -> None:
    """Runs inside every Ray Train worker."""
    import ray.train
    import ray.train.torch
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from engine.data.sample import Sample
    from rl.sft.collate import build_batch

    cfg = from_dict(SFTConfig, loop_config["cfg"])
    total_steps = loop_config["total_steps"]
    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    torch.manual_seed(cfg.seed + rank)
    if not cfg.use_gpu:
        torch.set_num_threads(cfg.torch_threads)

    ds_config = loop_config.get("deepspeed")
    hf_ds = None
    if ds_config and ds_config["zero_optimization"]["stage"] == 3:
        # kept alive through the loop: transformers then loads the model partitioned (deepspeed.zero.Init)
        from transformers.integrations import HfDeepSpeedConfig

        hf_ds = HfDeepSpeedConfig({**ds_config, "train_batch_size": cfg.batch_size * ctx.get_world_size()})
    processor = AutoProcessor.from_pretrained(cfg.model_path, local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(cfg.model_path, local_files_only=True, dtype=torch.float32)
    model.train()
    device = ray.train.torch.get_device()
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    groups = [
        {"params": [p for n, p in named if ".visual." in f".{n}"], "lr": cfg.lr * cfg.vision_lr_mult},
        {"params": [p for n, p in named if ".visual." not in f".{n}"], "lr": cfg.lr},
    ]
    groups = [g for g in groups if g["params"]]
    schedule = lambda s: _lr_factor(s, cfg.warmup_steps, total_steps)  # noqa: E731  (scales every group)
    engine = None
    if ds_config:
        import deepspeed

        ds_config = {**ds_config, "train_batch_size": cfg.batch_size * ctx.get_world_size()}
        engine, optimizer, _, scheduler = deepspeed.initialize(
            model=model, model_parameters=groups, config=ds_config,
            lr_scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, schedule))
        model, device = engine, engine.device
    else:
        model = ray.train.torch.prepare_model(model)
        optimizer = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)

    distributed = torch.distributed.is_available() and torch.distributed.is_initialized() and ctx.get_world_size() > 1
    stopper = LossStop(cfg.stop_loss_at_most, cfg.stop_window)
    stopped = None
    shard = ray.train.get_dataset_shard("train")
    step, started, window, curve = 0, time.time(), [], []
    for epoch in range(cfg.epochs):
        batches = shard.iter_batches(
            batch_size=cfg.batch_size,
            batch_format="pandas",
            local_shuffle_buffer_size=cfg.shuffle_buffer,
            local_shuffle_seed=cfg.seed * 1000 + epoch,
        )
        for frame in batches:
            samples = [Sample.from_row(r) for r in frame.to_dict("records")]
            batch = build_batch(samples, processor, cfg.response_template).to(device)
            loss = model(**batch).loss
            if engine is not None:  # DeepSpeed: backward + clip + optimizer + scheduler step + zero_grad
                engine.backward(loss)
                engine.step()
            else:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                optimizer.step()
                scheduler.step()
            step += 1
            window.append(loss.item())
            if cfg.stop_loss_at_most:
                mean_loss = loss.detach().float().reshape(1)
                if distributed:  # the same number on every worker, so every worker stops at the same step
                    torch.distributed.all_reduce(mean_loss, op=torch.distributed.ReduceOp.SUM)
                    mean_loss /= ctx.get_world_size()
                if stopper.update(float(mean_loss.item())):
                    stopped = {"stopped_early": True, "step": step,
                               "reason": f"loss {stopper.mean:.4f} over the last {cfg.stop_window} steps <= {cfg.stop_loss_at_most}"}
            if step % cfg.log_every == 0 or step == total_steps or (stopped and window):
                elapsed = time.time() - started
                eta = elapsed / step * max(0, total_steps - step)
                metrics = {"step": step, "epoch": epoch, "loss": sum(window) / len(window), "lr": scheduler.get_last_lr()[-1]}
                curve.append({"step": step, "loss": round(metrics["loss"], 5)})
                if rank == 0:
                    print(f"[sft] step {step}/{total_steps} epoch {epoch} loss {metrics['loss']:.4f} elapsed {elapsed:.0f}s eta {eta:.0f}s", flush=True)
                ray.train.report(metrics)
                window = []
            if stopped or (cfg.max_steps and step >= cfg.max_steps):
                break
        if stopped or (cfg.max_steps and step >= cfg.max_steps):
            break

    # The whole curve rides on the last report: the driver reads it from result.metrics.
    final = {"step": step, "loss": curve[-1]["loss"] if curve else float("nan"), "loss_curve": curve, "done": True,
             "stop": stopped or {"stopped_early": False, "step": step, "reason": ""}}
    state_dict = None
    if engine is not None and ds_config["zero_optimization"]["stage"] == 3:
        state_dict = engine._zero3_consolidated_16bit_state_dict()  # a collective: every worker calls it; rank 0 gets the weights
    if rank == 0:
        with tempfile.TemporaryDirectory() as tmp:
            unwrapped = model.module if hasattr(model, "module") else model
            unwrapped.save_pretrained(tmp, **({"state_dict": state_dict} if state_dict is not None else {}))
            processor.save_pretrained(tmp)
            ray.train.report(final, checkpoint=ray.train.Checkpoint.from_directory(tmp))
    else:
        ray.train.report(final)


def run_sft(cfg: SFTConfig, *, parent_meta: dict | None = None) -> dict:
    """Train with Ray Train and write an HF folder to cfg.output_dir; returns the run summary."""
    import ray.data

    cfg.validate()
    ds_config = None
    if cfg.uses_deepspeed:
        ds_config = deepspeed_config(cfg)
        validate_deepspeed(ds_config)
    started = time.time()
    init_ray()
    # One config, one model: without preserve_order the blocks of a multi-file read arrive in
    # completion order, so the (seeded) local shuffle saw a different stream every run and builds
    # of one warm-start config differed (docs/warmstart.md). Set for the whole run: the read,
    # the materialize and Ray Train's ingest (its DataConfig copies the flag from this context).
    data_ctx = ray.data.DataContext.get_current()
    saved_preserve_order = data_ctx.execution_options.preserve_order
    data_ctx.execution_options.preserve_order = True
    try:
        return _run_sft(cfg, ds_config, started, parent_meta)
    finally:
        data_ctx.execution_options.preserve_order = saved_preserve_order


def _run_sft(cfg: SFTConfig, ds_config: dict | None, started: float, parent_meta: dict | None) -> dict:
    import ray.data
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    # Materialized up front: on a 2-CPU node, streaming reads would compete with the trainer for
    # cores every epoch (and the corpus is small next to the model's activations).
    # shard_paths: the one listing rule (a converter's quarantine/ is never read as training rows)
    dataset = ray.data.read_parquet([str(p) for p in shard_paths(cfg.train_data)]).materialize()
    n_rows = dataset.count()
    if n_rows == 0:
        raise ValueError(f"sft: no training rows in {cfg.train_data}")
    per_epoch = math.ceil(n_rows / (cfg.batch_size * cfg.num_workers))
    total_steps = per_epoch * cfg.epochs
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)

    out = Path(cfg.output_dir).resolve()
    trainer = TorchTrainer(
        _train_loop,
        train_loop_config={"cfg": to_dict(cfg), "total_steps": total_steps, "deepspeed": ds_config},
        scaling_config=ScalingConfig(
            num_workers=cfg.num_workers, use_gpu=cfg.use_gpu, resources_per_worker={"CPU": cfg.cpus_per_worker}
        ),
        run_config=RunConfig(name=f"sft-{config_hash(cfg)}", storage_path=str(out.parent / "ray_train")),
        datasets={"train": dataset},
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"sft: training finished without a checkpoint ({result.error})")
    with publish_dir(out) as tmp_out:  # atomically: a half-copied folder must never look like a finished model
        with result.checkpoint.as_directory() as ckpt_dir:
            shutil.copytree(ckpt_dir, tmp_out)
        metrics = result.metrics or {}
        curve = metrics.get("loss_curve", [])
        stop = metrics.get("stop") or {"stopped_early": False, "step": metrics.get("step", total_steps), "reason": ""}
        summary = {
            "stage": "sft",
            "model_id": (parent_meta or {}).get("model_id", cfg.model_path),
            "parent": cfg.model_path,
            "sft_config": to_dict(cfg),
            "config_hash": config_hash(cfg),
            "seed": cfg.seed,
            "gradus_version": __version__,
            "train_rows": n_rows,
            "steps": metrics.get("step", total_steps),  # optimizer steps run (fewer than planned after an early stop)
            "planned_steps": total_steps,
            "stop": stop,
            "parallelism": ("deepspeed zero-%d" % cfg.deepspeed.zero_stage) if ds_config else
                           ("ddp" if cfg.num_workers > 1 else "single worker") + (" (deepspeed section ignored: CPU workers)" if cfg.deepspeed.enabled and not cfg.use_gpu else ""),
            "deepspeed_config": ds_config,
            "loss_curve": curve,
            "wall_s": round(time.time() - started, 1),
        }
        (tmp_out / "gradus_model.json").write_text(json.dumps({**(parent_meta or {}), **summary}, indent=2))
    return summary
