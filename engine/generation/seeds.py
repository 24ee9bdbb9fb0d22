"""Per-draw sampling seeds: every draw has its own seed from (global seed, sample id, mask ratio,
draw index), so any draw can be reproduced alone, in any order, on any worker, whatever else is in
its batch. PISM seeds its masks and draws with it; a clean-image draw elsewhere (evaluation,
rejection sampling, CMAB's fallback) is PISM's ratio-0 draw of the same index."""
from __future__ import annotations

import hashlib


def draw_seed(global_seed: int, sample_id: str, ratio: float, draw: int) -> int:
    """A 63-bit seed; stable across processes and Python versions (no hash())."""
    key = f"{global_seed}|{sample_id}|{ratio:.6f}|{draw}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") >> 1
