"""config: sft.* -- supervised fine-tuning on Ray Train."""
from __future__ import annotations

from dataclasses import dataclass, field

from engine.config import ConfigError
from engine.data.response import DEFAULT_RESPONSE_TEMPLATE


@dataclass
class SFTDeepSpeed:
    """DeepSpeed ZeRO for GPU workers (deepspeed.initialize inside each Ray Train worker).

    Read only when use_gpu is true: CPU workers always train with DDP over gloo (the section is then
    ignored and the summary says so). Not run on this project's CPU machines; see docs/training_stages.md.
    """

    enabled: bool = False  # with use_gpu: deepspeed.initialize in every Ray Train worker instead of DDP
    zero_stage: int = 2  # 0 (DDP-like), 1 (optimizer states), 2 (+ gradients), 3 (+ parameters)
    dtype: str = "bfloat16"  # bfloat16 | float16 | float32 (mixed precision of the DeepSpeed engine)
    offload_optimizer: bool = False  # ZeRO-Offload: optimizer states in CPU memory (DeepSpeedCPUAdam)
    offload_param: bool = False  # ZeRO-3 only: parameters in CPU memory
    overlap_comm: bool = True  # zero_optimization.overlap_comm
    contiguous_gradients: bool = True  # zero_optimization.contiguous_gradients
    reduce_bucket_size: int = 500_000_000  # zero_optimization.reduce_bucket_size (elements)
    allgather_bucket_size: int = 500_000_000  # zero_optimization.allgather_bucket_size (stages 1-2)
    stage3_gather_16bit_weights_on_model_save: bool = True  # ZeRO-3: the final HF folder needs full weights
    config: str = ""  # a DeepSpeed JSON file; its keys override the ones built from this section

    def validate(self) -> None:
        if self.zero_stage not in (0, 1, 2, 3):
            raise ConfigError(f"sft.deepspeed.zero_stage {self.zero_stage} not in (0, 1, 2, 3)")
        if self.dtype not in ("bfloat16", "float16", "float32"):
            raise ConfigError(f"sft.deepspeed.dtype {self.dtype!r} not in (bfloat16, float16, float32)")
        if self.offload_param and self.zero_stage != 3:
            raise ConfigError("sft.deepspeed.offload_param needs zero_stage 3 (only ZeRO-3 partitions parameters)")
        if self.offload_optimizer and self.zero_stage == 0:
            raise ConfigError("sft.deepspeed.offload_optimizer needs zero_stage >= 1")
        if self.reduce_bucket_size < 1 or self.allgather_bucket_size < 1:
            raise ConfigError("sft.deepspeed: bucket sizes must be >= 1")


@dataclass
class SFTConfig:
    model_path: str = ""  # HF folder to start from (gradus train sft: also `warmstart:<config.yaml>`)
    train_data: str = ""  # canonical parquet shard(s) (gradus train sft: also `warmstart:<config.yaml>:<split>[?tasks=..]`)
    output_dir: str = ""  # run_sft: the HF folder written at the end; gradus train sft: the job folder (model in <output_dir>/model)
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
    stop_loss_at_most: float = 0.0  # stop once the mean loss of the last stop_window steps (all workers) is <= this; 0: off
    stop_window: int = 5  # optimizer steps averaged for stop_loss_at_most
    deepspeed: SFTDeepSpeed = field(default_factory=SFTDeepSpeed)  # GPU workers only

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.num_workers < 1 or self.vision_lr_mult <= 0:
            raise ConfigError("sft: need epochs >= 1, batch_size >= 1, lr > 0, vision_lr_mult > 0, num_workers >= 1")
        if "{answer}" not in self.response_template:
            raise ConfigError("sft.response_template must contain {answer}")
        if self.max_steps < 0 or self.stop_loss_at_most < 0 or self.stop_window < 1:
            raise ConfigError("sft: need max_steps >= 0, stop_loss_at_most >= 0, stop_window >= 1")
        self.deepspeed.validate()

    @property
    def train_source(self) -> str:
        """The training data reference (rl/sources.py TrainInputs, shared with GRPO configs)."""
        return self.train_data

    @train_source.setter
    def train_source(self, spec: str) -> None:
        self.train_data = spec

    @property
    def uses_deepspeed(self) -> bool:
        return self.use_gpu and self.deepspeed.enabled


# Fields added after the embedded default's cache keys were first computed: they join a cache key
# only when set to something other than their default, so existing warm-start caches stay valid.
LATER_FIELDS = ("stop_loss_at_most", "stop_window", "deepspeed")
