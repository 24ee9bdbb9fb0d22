"""Benchmark: build the embedded default from scratch and record its accuracy spread and wall time.

Writes benchmarks/results/warmstart.json:
  {"overall_acc": ..., "per_family": {...}, "wall_s": ..., ...}
wall_s covers corpus rendering, tokenizer + model build, Ray Train SFT and evaluation, in a
fresh cache directory (so nothing is reused), on the machine named in the record.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default=str(REPO / "configs" / "warmstart" / "tiny.yaml"))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "warmstart.json"))
    parser.add_argument("--from-cache", action="store_true", help="report the cached build's record (measured when it was built from scratch) instead of building again")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()

    from engine.config import load_config
    from rl.warmstart import WarmstartConfig, build_machine, ensure_warmstart

    if args.from_cache:
        cfg = load_config(WarmstartConfig, args.config, args.overrides)
        record = _record_with_weights_hash(ensure_warmstart(cfg))
    else:
        with tempfile.TemporaryDirectory(prefix="gradus-bench-") as cache:
            cfg = load_config(WarmstartConfig, args.config, [*args.overrides, f"cache_dir={cache}"])
            record = _record_with_weights_hash(ensure_warmstart(cfg))  # hashed before the cache is removed
    record.pop("config", None)
    record["machine"] = build_machine()  # where this benchmark ran; the record's build_machine is where the model was built
    if args.from_cache:
        record["note"] = ("the cached build's own record: wall_s covers tokenizer/model build + Ray Train SFT + eval, and the corpus "
                          "render unless the corpus was already cached (timings_s.corpus_s ~0; rendering it takes ~5 s)")
    else:
        record["note"] = "built from scratch in an empty cache: corpus + tokenizer/model build + Ray Train SFT + eval; wall_s covers all four"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2))
    print(json.dumps({k: record[k] for k in ("overall_acc", "per_family", "accepted", "wall_s", "weights_sha256")}, indent=2))


def _record_with_weights_hash(model: Path) -> dict:
    """The build's record plus the sha256 of its weights. SFT is deterministic (rl/sft/ray_train.py): two
    from-scratch builds of one config with the same torch build on CPUs that run the same kernels (the
    record's build_machine: CPU flags, torch's CPU capability) give these very bytes, so the hash says
    whether a cache holds the build this record describes; another instruction set gives other bytes."""
    import hashlib

    from rl.warmstart import read_record

    record = read_record(model)
    with open(model / "model.safetensors", "rb") as fh:
        record["weights_sha256"] = hashlib.file_digest(fh, "sha256").hexdigest()
    return record


if __name__ == "__main__":
    main()
