"""config: sft.* -- supervised fine-tuning on Ray Train."""
from __future__ import annotations

from dataclasses import dataclass

from engine.config import ConfigError
from engine.model.chat import DEFAULT_RESPONSE_TEMPLATE


@dataclass
class SFTConfig:
    model_path: str = ""  # HF folder to start from
    train_data: str = ""  # canonical parquet shard(s)
    output_dir: str = ""  # HF folder written at the end
    response_template: str = DEFAULT_RESPONSE_TEMPLATE  # what the assistant turn looks like
    epochs: int = 8
    max_steps: int = 0  # 0: run all epochs
    batch_size: int = 32
    lr: float = 2e-3
    # The vision tower of a from-scratch VLM gets tiny gradients next to the language model, which
    # learns answer priors first; a larger vision learning rate makes it use the image sooner.
    vision_lr_mult: float = 1.0
    weight_decay: float = 0.0
    warmup_steps: int = 30
    grad_clip: float = 1.0
    seed: int = 0
    num_workers: int = 1  # Ray Train workers (DDP over gloo on CPU, NCCL on GPUs)
    cpus_per_worker: float = 1.0
    use_gpu: bool = False
    torch_threads: int = 2  # intra-op threads per CPU worker
    shuffle_buffer: int = 1024
    log_every: int = 10

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.num_workers < 1 or self.vision_lr_mult <= 0:
            raise ConfigError("sft: need epochs >= 1, batch_size >= 1, lr > 0, vision_lr_mult > 0, num_workers >= 1")
        if "{answer}" not in self.response_template:
            raise ConfigError("sft.response_template must contain {answer}")
