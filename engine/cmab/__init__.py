"""CMAB: difficulty by how attention splits between image and text tokens (docs/methods.md#cmab)."""
from engine.cmab.attention import IMPL, LayerMasses, Spans, collect_masses, eager_masses, lean_masses, register
from engine.cmab.config import CmabBuckets, CmabConfig, bucket_of
from engine.cmab.encode import encode, load_model
from engine.cmab.metrics import Rho, code_rho, paper_rho, rho

__all__ = ["IMPL", "CmabBuckets", "CmabConfig", "LayerMasses", "Rho", "Spans", "bucket_of", "code_rho", "collect_masses",
           "eager_masses", "encode", "lean_masses", "load_model", "paper_rho", "register", "rho"]
