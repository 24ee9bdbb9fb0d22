"""CMAB for one sample: its verified response -> one lean forward -> rho-bar, bucket, layer profile.

Only correct responses are scored (docs/methods.md#cmab); a sample without one is unsolved and
gets no bucket. Undecodable images and encoding failures are error records with a reason, never
scores.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from engine.cmab.attention import lean_masses
from engine.cmab.config import CmabConfig, bucket_of
from engine.cmab.encode import encode, load_model
from engine.cmab.metrics import heatmap_rows, rho
from engine.data.images import ImagePolicy
from engine.data.reasons import SampleError
from engine.data.sample import Sample
from engine.errors import error_detail


@dataclass
class CmabRecord:
    id: str
    task: str
    mode: str
    unsolved: bool = False
    rho_bar: float | None = None
    bucket: str | None = None  # easy | mid | hard; None when unsolved or errored
    layer_profile: list[float] = field(default_factory=list)
    response_source: str | None = None  # where the verified response came from (e.g. "pism", "generated")
    prompt_tokens: int = 0
    response_tokens: int = 0
    image_tokens: int = 0
    image_spans: list[tuple[int, int]] = field(default_factory=list)
    error: str | None = None
    error_detail: str | None = None
    attention_rows: list[list[float]] | None = None  # [response token][input position], only when asked (heatmaps)


class CmabScorer:
    """Holds one model on lean attention for its whole life (one per Ray actor in the pipeline)."""

    def __init__(self, model_path: str, cfg: CmabConfig, device: str = "cpu", dtype: str = "float32", policy: ImagePolicy | None = None):
        cfg.validate()
        self.cfg, self.device, self.policy = cfg, device, policy or ImagePolicy()
        self.model, self.processor = load_model(model_path, lean=True, dtype=dtype, device=device)

    def score(self, sample: Sample, response: str | None, source: str | None = None, keep_rows: bool = False) -> CmabRecord:
        """`response`: a verified-correct answer, or None when the model never answered correctly.
        `keep_rows`: also return the head- and layer-averaged attention rows (for a heatmap)."""
        rec = CmabRecord(sample.id, sample.task, self.cfg.mode, response_source=source)
        if response is None:
            rec.unsolved = True
            return rec
        try:
            images = sample.load_images(self.policy)
        except SampleError as err:
            rec.error, rec.error_detail = err.reason.value, err.detail
            return rec
        try:
            inputs, spans = encode(self.processor, sample.prompt_messages, images, response, self.model.config.image_token_id)
            inputs = {k: v.to(self.device) if hasattr(v, "to") else v for k, v in inputs.items()}
            masses = lean_masses(self.model, inputs, spans, self.cfg.chunk_rows, keep_rows=keep_rows)
            result = rho(masses, spans, self.cfg)
        except (ValueError, TypeError) as exc:  # e.g. no text before the image in code mode, a template that splits the prompt
            rec.error, rec.error_detail = "cmab_error", error_detail(exc)
            return rec
        rec.rho_bar, rec.bucket, rec.layer_profile = result.rho_bar, bucket_of(result.rho_bar, self.cfg.buckets), result.layer_profile
        rec.prompt_tokens, rec.response_tokens = spans.prompt_len, spans.response_len
        rec.image_tokens, rec.image_spans = int(spans.image.sum()), spans.image_spans()
        if keep_rows:
            rec.attention_rows = heatmap_rows(masses, self.cfg).tolist()
        return rec
