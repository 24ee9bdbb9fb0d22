"""PISM: difficulty by sensitivity to progressive image masking (docs/methods.md#pism)."""
from engine.pism.config import ApproxConfig, BucketConfig, PismConfig, bucket_of
from engine.generation.seeds import draw_seed
from engine.pism.masks import mask_image
from engine.pism.schedule import SampleSchedule
from engine.pism.scorer import PismRecord, PismStream, score_samples

__all__ = ["ApproxConfig", "BucketConfig", "PismConfig", "PismRecord", "PismStream", "SampleSchedule", "bucket_of", "draw_seed", "mask_image", "score_samples"]
