"""SFT on Ray Train: TorchTrainer workers stream canonical shards from Ray Data and train the VLM.

One code path for one CPU worker here and N GPU workers on a cluster (DDP via prepare_model).
The final weights come back as a Ray Train checkpoint and are saved as a plain HF folder.
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
from engine.config import config_hash, from_dict, to_dict
from rl.sft.config import SFTConfig


def _lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


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

    processor = AutoProcessor.from_pretrained(cfg.model_path, local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(cfg.model_path, local_files_only=True, dtype=torch.float32)
    model.train()
    model = ray.train.torch.prepare_model(model)
    device = ray.train.torch.get_device()
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    groups = [
        {"params": [p for n, p in named if ".visual." in f".{n}"], "lr": cfg.lr * cfg.vision_lr_mult},
        {"params": [p for n, p in named if ".visual." not in f".{n}"], "lr": cfg.lr},
    ]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, cfg.warmup_steps, total_steps))  # scales every group

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
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            window.append(loss.item())
            if step % cfg.log_every == 0 or step == total_steps:
                elapsed = time.time() - started
                eta = elapsed / step * max(0, total_steps - step)
                metrics = {"step": step, "epoch": epoch, "loss": sum(window) / len(window), "lr": scheduler.get_last_lr()[-1]}
                curve.append({"step": step, "loss": round(metrics["loss"], 5)})
                if rank == 0:
                    print(f"[sft] step {step}/{total_steps} epoch {epoch} loss {metrics['loss']:.4f} elapsed {elapsed:.0f}s eta {eta:.0f}s", flush=True)
                ray.train.report(metrics)
                window = []
            if cfg.max_steps and step >= cfg.max_steps:
                break
        if cfg.max_steps and step >= cfg.max_steps:
            break

    # The whole curve rides on the last report: the driver reads it from result.metrics.
    final = {"step": step, "loss": curve[-1]["loss"] if curve else float("nan"), "loss_curve": curve, "done": True}
    if rank == 0:
        with tempfile.TemporaryDirectory() as tmp:
            unwrapped = model.module if hasattr(model, "module") else model
            unwrapped.save_pretrained(tmp)
            processor.save_pretrained(tmp)
            ray.train.report(final, checkpoint=ray.train.Checkpoint.from_directory(tmp))
    else:
        ray.train.report(final)


def run_sft(cfg: SFTConfig, *, parent_meta: dict | None = None) -> dict:
    """Train with Ray Train and write an HF folder to cfg.output_dir; returns the run summary."""
    import ray
    import ray.data
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    cfg.validate()
    started = time.time()
    init_ray()
    # Materialized up front: on a 2-CPU node, streaming reads would compete with the trainer for
    # cores every epoch (and the corpus is small next to the model's activations).
    dataset = ray.data.read_parquet(cfg.train_data).materialize()
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
        train_loop_config={"cfg": to_dict(cfg), "total_steps": total_steps},
        scaling_config=ScalingConfig(
            num_workers=cfg.num_workers, use_gpu=cfg.use_gpu, resources_per_worker={"CPU": cfg.cpus_per_worker}
        ),
        run_config=RunConfig(name=f"sft-{config_hash(cfg)}", storage_path=str(out.parent / "ray_train")),
        datasets={"train": dataset},
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"sft: training finished without a checkpoint ({result.error})")
    tmp_out = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp_out, ignore_errors=True)
    with result.checkpoint.as_directory() as ckpt_dir:
        shutil.copytree(ckpt_dir, tmp_out)
    curve = (result.metrics or {}).get("loss_curve", [])
    summary = {
        "stage": "sft",
        "model_id": (parent_meta or {}).get("model_id", cfg.model_path),
        "parent": cfg.model_path,
        "sft_config": to_dict(cfg),
        "config_hash": config_hash(cfg),
        "seed": cfg.seed,
        "gradus_version": __version__,
        "train_rows": n_rows,
        "steps": total_steps,
        "loss_curve": curve,
        "wall_s": round(time.time() - started, 1),
    }
    (tmp_out / "gradus_model.json").write_text(json.dumps({**(parent_meta or {}), **summary}, indent=2))
    # Publish atomically: a half-copied folder must never look like a finished model.
    shutil.rmtree(out, ignore_errors=True)
    tmp_out.rename(out)
    return summary
