"""Benchmark P4: CMAB's lean attention reduction vs materialized eager attention.

A randomly initialised Qwen2.5-VL-architecture model (text 8 x 512, 8 heads, 4 KV heads; built
offline by gradus's tiny-model builder) at total sequence lengths 1k, 2k, 4k (one 448 px image =
256 visual tokens, filler text, a 64-token response). Each (length, implementation, start) runs in
a fresh process, either as the process's first forward (cold) or after one 512-token forward
(warm: kernel and thread-pool start-up already paid). Two memory measures (`--measures`):
- rss (CPU only): peak RSS during the forward, sampled every millisecond, above the RSS just
  before it. Counts everything the process maps: thread stacks, library scratch space, freed
  blocks the C allocator keeps.
- alloc: torch's own allocator counters, the bytes of tensors the forward holds at its peak (see
  AllocPeak): on CUDA the caching allocator's peak statistics, on CPU the profiler's memory events.
Writes benchmarks/results/cmab.json (other keys kept):
- rss: peak_mem_ratio[L] (warm) and peak_mem_ratio_cold[L]: extra peak memory of eager / of lean
  (target >= 20 at 4k); time_ratio[L]: lean forward time / eager forward time (median of --repeats;
  target <= 1.0); max_rel_err[L]: |rho_lean - rho_eager| / |rho_eager| over paper and code modes
  (target <= 1e-4).
- alloc: peak_mem_ratio_alloc[L] = {cold, warm} (target >= 20 at 4k, both), and `alloc` with the
  same run's peaks in bytes, time_ratio, max_abs_err (target <= 1e-4) and max_rel_err.
`measure_p4` is what benchmarks/gpu/driver.py calls for the CUDA figures.
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
MEASURES = ("rss", "alloc")
TARGETS = {"peak_mem_ratio_4k": ">= 20", "peak_mem_ratio_alloc_4k": ">= 20 (cold and warm)", "time_ratio": "<= 1.0",
           "max_rel_err": "<= 1e-4", "max_abs_err": "<= 1e-4"}


def build_model(out: Path, text=None, image_px: int = IMAGE_PX) -> Path:
    """The benchmark's random model; `text` (a TextTowerConfig) and `image_px` shrink it for smoke runs."""
    from engine.model.tiny import TextTowerConfig, TinyModelConfig, build_tiny_model

    text = text or TextTowerConfig(hidden_size=512, intermediate_size=1536, num_hidden_layers=8, num_attention_heads=8,
                                   num_key_value_heads=4, mrope_section=[8, 12, 12], max_position_embeddings=8192)
    cfg = TinyModelConfig(model_id=f"gradus/bench-qwen2.5-vl-{text.hidden_size}x{text.num_hidden_layers}", text=text,
                          min_pixels=image_px * image_px, max_pixels=image_px * image_px)
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


class AllocPeak:
    """Peak bytes of tensors allocated inside the block and alive at once, by torch's own counters.

    CUDA: the caching allocator's statistics (reset_peak_memory_stats, then max_memory_allocated
    above memory_allocated at entry). CPU: this torch build keeps no CPU allocator statistics
    (torch.accelerator's memory_stats needs an accelerator), so the profiler is used: with
    profile_memory=True c10's CPU allocator reports each tensor allocation made inside the block and
    each free of one, with its size; the running sum in time order is the live bytes, and its
    maximum the peak. Neither counts what RSS also sees (thread stacks, library scratch space, freed
    blocks kept by the C allocator), so cold and warm starts should agree.
    """

    def __init__(self, device: str):
        import torch

        self.torch, self.cuda, self.extra = torch, device.startswith("cuda"), 0

    def __enter__(self):
        torch = self.torch
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
        else:
            self._prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True)
            self._prof.__enter__()
        return self

    def __exit__(self, *exc):
        torch = self.torch
        if self.cuda:
            torch.cuda.synchronize()
            self.extra = torch.cuda.max_memory_allocated() - self._base
            return
        self._prof.__exit__(*exc)
        self.extra = peak_live_bytes(self._prof.profiler.kineto_results.events())


def peak_live_bytes(events) -> int:
    """Max running sum of the CPU allocator's [memory] event sizes (+alloc, -free) in time order."""
    from torch.autograd import DeviceType

    live = peak = 0
    for e in sorted((e for e in events if e.name() == "[memory]" and e.device_type() == DeviceType.CPU), key=lambda e: e.start_ns()):
        live += e.nbytes()
        peak = max(peak, live)
    return peak


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


def on_device(inputs: dict, device: str) -> dict:
    import torch

    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in inputs.items()}


def masses_fn(model, impl: str, device: str):
    """inputs, spans -> per-layer masses for `impl`, finished on the device before it returns."""
    import torch

    from engine.cmab import eager_masses, lean_masses

    def run(inputs, spans):
        masses = lean_masses(model, inputs, spans) if impl == "lean" else eager_masses(model, inputs, spans)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return masses
    return run


def worker(model_path: str, seq: int, impl: str, warm: bool, measure: str = "rss", device: str = "cpu", dtype: str = "float32",
           repeats: int = 3) -> dict:
    from engine.cmab import CmabConfig, load_model, rho

    if measure == "rss" and device != "cpu":
        raise ValueError("RSS does not see accelerator memory: measure 'alloc' on cuda")
    model, processor = load_model(model_path, lean=impl == "lean", dtype=dtype, device=device)
    run = masses_fn(model, impl, device)
    if warm:  # one-time start-up (kernel and thread-pool initialisation) paid on a short input first
        short, short_spans = build_inputs(processor, model, 512)
        run(on_device(short, device), short_spans)
    inputs, spans = build_inputs(processor, model, seq)
    inputs = on_device(inputs, device)
    with (PeakRss() if measure == "rss" else AllocPeak(device)) as mem:
        masses = run(inputs, spans)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run(inputs, spans)
        times.append(time.perf_counter() - t0)
    return {"seq": int(inputs["input_ids"].shape[1]), "impl": impl, "warm": warm, "measure": measure, "device": device, "dtype": dtype,
            "extra_peak_bytes": mem.extra, **({"baseline_rss_bytes": mem.base} if measure == "rss" else {}),
            "forward_s": statistics.median(times) if times else None, "timed_forwards": repeats, "image_tokens": int(spans.image.sum()),
            "rho_paper": rho(masses, spans, CmabConfig(mode="paper")).rho_bar, "rho_code": rho(masses, spans, CmabConfig(mode="code")).rho_bar}


def run_arms(model: Path, seqs, measure: str, device: str, dtype: str, repeats: int = 3, log=print) -> dict:
    """(seq, impl, start) -> worker result, each arm in a fresh process."""
    runs = {}
    # the repository first, then whatever the caller's path holds (a lent machine's carried packages)
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    for seq in seqs:
        for impl in ("lean", "eager"):
            for start in ("cold", "warm"):
                cmd = [sys.executable, __file__, "--worker", str(model), str(seq), impl, start, "--measures", measure, "--device", device,
                       "--dtype", dtype, "--repeats", str(repeats)]
                proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": path})
                if proc.returncode:
                    raise RuntimeError(f"worker {seq} {impl} {start} ({measure}, {device}) failed:\n{proc.stderr[-3000:]}")
                runs[(seq, impl, start)] = json.loads(proc.stdout.strip().splitlines()[-1])
                log(seq, impl, start, runs[(seq, impl, start)])
    return runs


def seq_key(seq: int) -> str:
    return f"{seq // 1024}k" if seq % 1024 == 0 else str(seq)


def rho_errors(run: dict, ref: dict) -> tuple[float, float]:
    """(max abs, max rel) difference of `run`'s rho-bar from the reference `ref`'s, over paper and code modes."""
    diffs = [(abs(run[m] - ref[m]), abs(ref[m])) for m in ("rho_paper", "rho_code")]
    return max(d for d, _ in diffs), max(d / max(ref, 1e-30) for d, ref in diffs)


def rss_record(runs: dict, seqs) -> dict:
    record = {"peak_mem_ratio": {}, "peak_mem_ratio_cold": {}, "time_ratio": {}, "max_rel_err": {}, "runs": [],
              "memory_measure": "RSS sampled every 1 ms, above the RSS just before the forward, in a fresh process; "
                                "cold: the first forward of the process; warm: after one 512-token forward (start-up paid)"}
    for seq in seqs:
        key = seq_key(seq)
        for start, name in (("warm", "peak_mem_ratio"), ("cold", "peak_mem_ratio_cold")):
            lean, eager = runs[(seq, "lean", start)], runs[(seq, "eager", start)]
            record[name][key] = round(eager["extra_peak_bytes"] / max(1, lean["extra_peak_bytes"]), 2)
        lean, eager = runs[(seq, "lean", "warm")], runs[(seq, "eager", "warm")]
        if lean["forward_s"] is not None:  # --repeats 0: memory only
            record["time_ratio"][key] = round(lean["forward_s"] / eager["forward_s"], 3)
        record["max_rel_err"][key] = rho_errors(lean, eager)[1]
        record["runs"] += [runs[(seq, i, st)] for i in ("lean", "eager") for st in ("cold", "warm")]
    return record


def alloc_record(runs: dict, seqs, device: str) -> dict:
    how = ("torch.cuda.max_memory_allocated after reset_peak_memory_stats, above memory_allocated at entry" if device.startswith("cuda") else
           "torch.profiler (profile_memory=True): peak of the running sum of the CPU allocator's allocation/free events "
           "inside the forward (this torch build keeps no CPU allocator statistics)")
    ratios, block = {}, {"extra_peak_bytes": {}, "time_ratio": {}, "max_abs_err": {}, "max_rel_err": {}, "runs": [],
                         "memory_measure": f"{how}; a fresh process per arm; cold: its first forward; warm: after one 512-token forward"}
    for seq in seqs:
        key = seq_key(seq)
        pick = {(i, st): runs[(seq, i, st)] for i in ("lean", "eager") for st in ("cold", "warm")}
        ratios[key] = {st: round(pick[("eager", st)]["extra_peak_bytes"] / max(1, pick[("lean", st)]["extra_peak_bytes"]), 2)
                       for st in ("cold", "warm")}
        block["extra_peak_bytes"][key] = {i: {st: pick[(i, st)]["extra_peak_bytes"] for st in ("cold", "warm")} for i in ("lean", "eager")}
        if pick[("lean", "warm")]["forward_s"] is not None:  # --repeats 0: memory only
            block["time_ratio"][key] = round(pick[("lean", "warm")]["forward_s"] / pick[("eager", "warm")]["forward_s"], 3)
        errs = [rho_errors(pick[("lean", st)], pick[("eager", st)]) for st in ("cold", "warm")]
        block["max_abs_err"][key], block["max_rel_err"][key] = max(e[0] for e in errs), max(e[1] for e in errs)
        block["runs"] += list(pick.values())
    if not block["time_ratio"]:  # --repeats 0: not timed
        del block["time_ratio"]
    block.update({"device": device, "dtype": runs[(seqs[0], "lean", "cold")]["dtype"], "machine": machine()})
    return {"peak_mem_ratio_alloc": ratios, "alloc": block}


def machine() -> dict:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(), "date": time.strftime("%Y-%m-%d")}


def measure_p4(model: Path, seqs, measures=MEASURES, device: str = "cpu", dtype: str = "float32", repeats: int = 3, log=print) -> dict:
    """P4's record for `measures` on `device`: each (length, implementation, start) a fresh process."""
    record = {}
    for measure in measures:
        runs = run_arms(model, seqs, measure, device, dtype, repeats, log)
        record.update(rss_record(runs, seqs) if measure == "rss" else alloc_record(runs, seqs, device))
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seq", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--measures", nargs="+", choices=MEASURES, default=list(MEASURES),
                        help="memory measures to run (each its own fresh processes); only their keys are rewritten")
    parser.add_argument("--device", default="cpu", help="cpu | cuda (cuda: alloc only)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--repeats", type=int, default=3, help="timed forwards per arm (the median is reported); 0: memory only")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "cmab.json"))
    parser.add_argument("--worker", nargs=4, metavar=("MODEL", "SEQ", "IMPL", "WARM"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.worker[2], args.worker[3] == "warm",
                                args.measures[0], args.device, args.dtype, args.repeats)))
        return

    from engine import __version__

    with tempfile.TemporaryDirectory() as tmp:
        record = measure_p4(build_model(Path(tmp) / "model"), args.seq, args.measures, args.device, args.dtype, args.repeats,
                            log=lambda *a: print(*a, flush=True))
    record.update({"targets": TARGETS, "model": "random-init Qwen2.5-VL architecture, text 8 x 512 (8 heads, 4 KV), vision 4 x 128",
                   "response_tokens": RESPONSE_TOKENS, "image_px": IMAGE_PX, "gradus_version": __version__})
    if "rss" in args.measures:  # the top-level descriptors are the RSS run's; the alloc block carries its own
        record.update({"dtype": args.dtype, "device": args.device, "machine": machine()})
    merge_results(Path(args.out), record)  # cmab_throughput.py writes its keys into the same file


if __name__ == "__main__":
    main()
