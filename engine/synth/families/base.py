"""What every task family produces for one sample."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image


@dataclass
class FamilyItem:
    image: Image.Image
    question: str
    answer: str  # bare ground truth, never wrapped in \boxed{}
    verifier: str
    params: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)  # what was drawn: objects, values, text
    domain: str = "perception"
