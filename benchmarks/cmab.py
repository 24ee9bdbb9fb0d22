"""Benchmark P4: CMAB's lean attention reduction vs materialized eager attention, on CPU.

A randomly initialised Qwen2.5-VL-architecture model (text 8 x 512, 8 heads, 4 KV heads; built
offline by gradus's tiny-model builder) at total sequence lengths 1k, 2k, 4k (one 448 px image =
256 visual tokens, filler text, a 64-token response). Each (length, implementation) runs in a
fresh process: peak RSS during the forward is sampled every millisecond and reported above the
RSS just before it (model and inputs loaded), either as the process's first forward (cold) or
after one 512-token forward (warm: kernel and thread-pool start-up already paid). Writes
benchmarks/results/cmab.json:
- peak_mem_ratio[L] (warm) and peak_mem_ratio_cold[L]: extra peak memory of eager / of lean
  (target >= 20 at 4k);
- time_ratio[L]: lean forward time / eager forward time (median of 3; target <= 1.0);
- max_rel_err[L]: |rho_lean - rho_eager| / |rho_eager| over paper and code modes (target <= 1e-4).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import merge_results

REPO = Path(__file__).resolve().parent.parent
RESPONSE_TOKENS = 64
IMAGE_PX = 448


def build_model(out: Path) -> Path:
    from engine.model.tiny import TextTowerConfig, TinyModelConfig, build_tiny_model

    cfg = TinyModelConfig(
        model_id="gradus/bench-qwen2.5-vl-512x8",
        text=TextTowerConfig(hidden_size=512, intermediate_size=1536, num_hidden_layers=8, num_attention_heads=8,
                             num_key_value_heads=4, mrope_section=[8, 12, 12], max_position_embeddings=8192),
        min_pixels=IMAGE_PX * IMAGE_PX, max_pixels=IMAGE_PX * IMAGE_PX,
    )
    texts = ["How many shapes are in the picture? Put the final answer in \\boxed{}.", "\\boxed{3}", "red green blue circle square"] * 50
    return build_tiny_model(cfg, texts, out)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRss:
    """Samples this process's RSS every millisecond while active."""

    def __enter__(self):
        self.base, self.peak, self._stop = _rss(), 0, False
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self):
        while not self._stop:
            self.peak = max(self.peak, _rss())
            time.sleep(0.001)

    def __exit__(self, *exc):
        self._stop = True
        self._thread.join()
        self.peak = max(self.peak, _rss())

    @property
    def extra(self) -> int:
        return max(0, self.peak - self.base)


def build_inputs(processor, model, seq: int):
    """One 448 px image, filler text and a RESPONSE_TOKENS response, `seq` tokens in all."""
    import torch
    from PIL import Image

    from engine.cmab import Spans, encode
    from engine.data.sample import Message

    torch.manual_seed(0)
    image = Image.fromarray((torch.rand(IMAGE_PX, IMAGE_PX, 3) * 255).to(torch.uint8).numpy())
    inputs, spans = encode(processor, [Message("user", "<image>x")], [image], "y", model.config.image_token_id)
    ids, p = inputs["input_ids"][0].tolist(), spans.prompt_len
    # Stretch to `seq` tokens: filler text before the assistant turn's header, and a RESPONSE_TOKENS-long
    # response in place of "y" (token identity does not matter to a random model; positions and spans do).
    filler = processor.tokenizer.convert_tokens_to_ids("a")
    words = max(1, seq - len(ids) - RESPONSE_TOKENS + 1)
    # every per-token tensor (input_ids, attention_mask, mm_token_type_ids) is stretched the same way
    index = list(range(p - 3)) + [p - 4] * words + list(range(p - 3, p)) + [p] * RESPONSE_TOKENS + list(range(p + 1, len(ids)))
    is_filler = torch.tensor([False] * (p - 3) + [True] * words + [False] * 3 + [True] * RESPONSE_TOKENS + [False] * (len(ids) - p - 1))
    for key, value in list(inputs.items()):
        if torch.is_tensor(value) and value.dim() == 2 and value.shape[1] == len(ids):
            inputs[key] = value[:, index]
    inputs["input_ids"][0, is_filler] = filler
    image_mask = inputs["input_ids"][0] == model.config.image_token_id
    return inputs, Spans(image=image_mask, prompt_len=p + words, response_len=RESPONSE_TOKENS + 1)


def worker(model_path: str, seq: int, impl: str, warm: bool) -> dict:
    from engine.cmab import CmabConfig, eager_masses, lean_masses, load_model, rho

    model, processor = load_model(model_path, lean=impl == "lean")

    def run(inputs, spans):
        return lean_masses(model, inputs, spans) if impl == "lean" else eager_masses(model, inputs, spans)

    if warm:  # one-time start-up (kernel and thread-pool initialisation) paid on a short input first
        run(*build_inputs(processor, model, 512))
    inputs, spans = build_inputs(processor, model, seq)
    with PeakRss() as mem:
        masses = run(inputs, spans)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        run(inputs, spans)
        times.append(time.perf_counter() - t0)
    return {"seq": int(inputs["input_ids"].shape[1]), "impl": impl, "warm": warm, "extra_peak_bytes": mem.extra,
            "baseline_rss_bytes": mem.base, "forward_s": statistics.median(times), "image_tokens": int(spans.image.sum()),
            "rho_paper": rho(masses, spans, CmabConfig(mode="paper")).rho_bar, "rho_code": rho(masses, spans, CmabConfig(mode="code")).rho_bar}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seq", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "cmab.json"))
    parser.add_argument("--worker", nargs=4, metavar=("MODEL", "SEQ", "IMPL", "WARM"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.worker[2], args.worker[3] == "warm")))
        return

    from engine import __version__

    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        model = build_model(Path(tmp) / "model")
        for seq in args.seq:
            for impl in ("lean", "eager"):
                for start in ("cold", "warm"):
                    proc = subprocess.run([sys.executable, __file__, "--worker", str(model), str(seq), impl, start], capture_output=True,
                                          text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
                    if proc.returncode:
                        raise SystemExit(f"worker {seq} {impl} {start} failed:\n{proc.stderr[-3000:]}")
                    runs[(seq, impl, start)] = json.loads(proc.stdout.strip().splitlines()[-1])
                    print(seq, impl, start, runs[(seq, impl, start)], flush=True)
    record = {"peak_mem_ratio": {}, "peak_mem_ratio_cold": {}, "time_ratio": {}, "max_rel_err": {}, "runs": [],
              "targets": {"peak_mem_ratio_4k": ">= 20", "time_ratio": "<= 1.0", "max_rel_err": "<= 1e-4"}}
    for seq in args.seq:
        key = f"{seq // 1024}k" if seq % 1024 == 0 else str(seq)
        for start, name in (("warm", "peak_mem_ratio"), ("cold", "peak_mem_ratio_cold")):
            lean, eager = runs[(seq, "lean", start)], runs[(seq, "eager", start)]
            record[name][key] = round(eager["extra_peak_bytes"] / max(1, lean["extra_peak_bytes"]), 2)
        lean, eager = runs[(seq, "lean", "warm")], runs[(seq, "eager", "warm")]
        record["time_ratio"][key] = round(lean["forward_s"] / eager["forward_s"], 3)
        record["max_rel_err"][key] = max(abs(lean[m] - eager[m]) / abs(eager[m]) for m in ("rho_paper", "rho_code"))
        record["runs"] += [runs[(seq, i, st)] for i in ("lean", "eager") for st in ("cold", "warm")]
    record.update({"model": "random-init Qwen2.5-VL architecture, text 8 x 512 (8 heads, 4 KV), vision 4 x 128",
                   "response_tokens": RESPONSE_TOKENS, "image_px": IMAGE_PX, "dtype": "float32", "device": "cpu",
                   "memory_measure": "RSS sampled every 1 ms, above the RSS just before the forward, in a fresh process; "
                                     "cold: the first forward of the process; warm: after one 512-token forward (start-up paid)",
                   "gradus_version": __version__,
                   "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}})
    merge_results(Path(args.out), record)  # cmab_throughput.py writes its keys into the same file


if __name__ == "__main__":
    main()
