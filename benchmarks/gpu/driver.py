"""The prepared GPU check: what gradus measures whenever a GPU machine is lent (run through run.sh).

Parts, in this order (cheapest and most telling first); benchmarks/results/gpu.json is rewritten
after each one, so a run stopped by its time limit keeps what finished, and a part that fails
records its error while the others still run (the exit status is then 1):
- seeded_sampling: the HF backend's per-request seeded sampling gives the same draws (text and
  token count) on CPU and on CUDA, for real PISM draw requests (masked images, per-draw seeds).
- cmab_bf16: CMAB's lean reduction vs the eager reference in bfloat16, at 1k/2k/4k tokens, and
  both against the float32 eager reference (rho-bar, paper and code modes).
- cmab_p4: benchmarks/cmab.py's P4 with CUDA allocator peaks (max_memory_allocated after
  reset_peak_memory_stats), cold and warm, each arm a fresh process; time ratio; rho errors.
- p3_hf: P3 on the HF backend: the engine path (score_samples: every unfinished sample's next draw
  in one generate call) against the seed code's request pattern (benchmarks/pism_throughput.py's
  reference_client) at its own concurrency (10 draws outstanding) and at equal concurrency (as many
  outstanding as samples), reference schedule, one engine (HF generate keeps no cache between
  calls, so no arm warms another); plus the adaptive engine path against the seed pattern.

Models: the seeded check and P3 use the embedded default (the warm-started tiny model) and its
corpus's test split, carried to the lent machine (`run.sh prepare`: building it needs Ray Train,
which that machine lacks). The CMAB parts build benchmarks/cmab.py's random 8 x 512 model on the
spot (seconds, offline). `--cpu-smoke` runs every part on CPU at toy sizes (a small random model
and a one-sample-per-family synthetic corpus built on the spot; the seeded check compares two CPU
engines batching the draws differently) so the test suite exercises every code path without a GPU.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

CARRY = REPO / "benchmarks" / "gpu" / "carry"
LENT_PYTHON = "3.12"  # the lent machine's python3 (its image's torch lives there)
# What the lent machine lacks, or holds at versions gradus is not tested with (transformers 5.17 there),
# carried as wheels at the versions installed here. math-verify is left out: the synthetic corpus's
# verifier is `exact`, and engine.verifiers imports math-verify only when a math verifier runs.
WHEELS = ("transformers", "tokenizers", "pebble", "rapidfuzz")
CARRY_LIMIT = 48 << 20  # the device tool carries 64 MiB per call, the repository included
NOT_ON_LENT_MACHINE = ("vLLM (P2/P3 on vLLM, prefix-cache counts), Ray (every pipeline job, P2, Ray Data shaping, Ray Train SFT and "
                       "the warm start's build), verl (GRPO): none is in its image, and vLLM's and Ray's wheels exceed what one call carries")


@dataclass
class Sizes:
    """How big each part runs; GPU and SMOKE below are the two settings."""

    devices: tuple[str, str]  # seeded check: reference device, device under test
    device: str  # where P3, P4 and the bf16 check run
    seeded_requests: int
    seeded_test_batch: int  # the engine under test's batch size (smoke: below the request count, so draws meet other batch mates)
    p3_per_family: int
    hf_batch_size: int
    p4_seqs: list[int]
    bf16_seqs: list[int]
    overrides: dict = field(default_factory=dict)  # {"pism": {...}, "generation": {...}} over configs/pism/tiny.yaml


GPU = Sizes(("cpu", "cuda"), "cuda", 48, 48, 10, 512, [1024, 2048, 4096], [1024, 2048, 4096])
SMOKE = Sizes(("cpu", "cpu"), "cpu", 6, 4, 1, 32, [256], [256],
              {"pism": {"ratios": [0.0, 0.5], "draws": 2}, "generation": {"max_new_tokens": 4}})


def scoring_config(overrides: dict):
    """(PismConfig, generation dict) from configs/pism/tiny.yaml's pism and generation sections (hf backend)."""
    import yaml

    from engine.config import from_dict
    from engine.generation.base import GenerationConfig
    from engine.pism import PismConfig

    raw = yaml.safe_load((REPO / "configs" / "pism" / "tiny.yaml").read_text())
    pism = from_dict(PismConfig, {**raw["pism"], **overrides.get("pism", {})})
    gen = asdict(from_dict(GenerationConfig, {**raw["generation"], **overrides.get("generation", {}), "backend": "hf", "stop": []}))
    return pism, gen


def hf_backend(gen: dict, model: Path, **changes):
    from engine.config import from_dict
    from engine.generation.base import GenerationConfig
    from engine.generation.hf_backend import HFBackend

    return HFBackend(from_dict(GenerationConfig, {**gen, "model_path": str(model), **changes}))


def seeded_sampling(model: Path, samples, pism, gen: dict, devices, n: int, test_batch: int) -> dict:
    """Real PISM draw requests (clean and half-masked images, per-draw seeds) on two engines: same draws?

    The reference engine takes all n requests in one batch, the one under test `test_batch` at a time,
    on its own device (CPU against CPU in the smoke run: then only the batching differs)."""
    from engine.data.images import ImagePolicy
    from engine.pism.scorer import draw_request

    if gen["temperature"] <= 0:
        raise ValueError("the seeded check needs sampling (generation.temperature > 0)")
    requests = []
    for j in range(n):
        sample = samples[j % len(samples)]
        ratio_index = 0 if j % 2 == 0 else len(pism.ratios) // 2
        requests.append(draw_request(pism, sample, sample.load_images(ImagePolicy()), ratio_index, j // len(samples)))
    ref, test = ([(g.text, g.num_tokens) for g in hf_backend(gen, model, device=device, hf_batch_size=batch).generate(requests)]
                 for device, batch in zip(devices, (n, test_batch)))
    differ = [i for i, (a, b) in enumerate(zip(ref, test)) if a != b]
    return {"devices": list(devices), "batch_sizes": [n, test_batch], "requests": n, "identical": not differ, "agreement": round(1 - len(differ) / n, 4),
            "distinct_texts": len({t for t, _ in ref}), "temperature": gen["temperature"],
            "mismatches": [{"request": i, "reference": ref[i][0], "under_test": test[i][0]} for i in differ[:5]]}


def p3_hf(model: Path, samples, pism, gen: dict, device: str, batch: int) -> dict:
    """Engine path vs the seed code's request pattern (at its concurrency and at equal concurrency) on one HF engine."""
    from engine.config import from_dict
    from engine.pism import PismConfig, score_samples
    from pism_throughput import _same, reference_client

    backend = hf_backend(gen, model, device=device, hf_batch_size=batch)
    ref_cfg = from_dict(PismConfig, {**asdict(pism), "schedule": "reference"})
    score_samples(samples[:: max(1, len(samples) // 6)], backend, ref_cfg)  # warm-up: the first calls pay one-time costs
    wall, gens = {}, {}

    def timed(name, fn):
        t0 = time.perf_counter()
        out = fn()
        wall[name] = time.perf_counter() - t0
        return out

    engine = timed("engine_path", lambda: score_samples(samples, backend, ref_cfg))
    seed_conc, gens["reference_client_seed_concurrency"], _ = timed("reference_client_seed_concurrency",
                                                                      lambda: reference_client(backend, samples, ref_cfg, max_in_flight=10))
    equal_conc, gens["reference_client_equal_concurrency"], _ = timed("reference_client_equal_concurrency",
                                                                        lambda: reference_client(backend, samples, ref_cfg, max_in_flight=len(samples)))
    adaptive = timed("engine_path_adaptive", lambda: score_samples(samples, backend, pism))
    gens["engine_path"], gens["engine_path_adaptive"] = sum(r.generations for r in engine), sum(r.generations for r in adaptive)
    return {"batched_vs_reference_client_seed_concurrency": round(wall["reference_client_seed_concurrency"] / wall["engine_path"], 3),
            "batched_vs_reference_client_equal_concurrency": round(wall["reference_client_equal_concurrency"] / wall["engine_path"], 3),
            "adaptive_engine_vs_reference_client_seed_concurrency": round(wall["reference_client_seed_concurrency"] / wall["engine_path_adaptive"], 3),
            "samples": len(samples), "device": device, "hf_batch_size": batch, "seed_concurrency": 10, "equal_concurrency": len(samples),
            "wall_s": {k: round(v, 2) for k, v in wall.items()}, "generations": gens,
            "generations_per_s": {k: round(gens[k] / wall[k], 1) for k in wall},
            "same_outcomes": {"seed_concurrency": _same(engine, seed_conc), "equal_concurrency": _same(engine, equal_conc)},
            "errors": sum(bool(r.error) for r in engine)}


def cmab_bf16(model: Path, seqs, device: str) -> dict:
    """rho-bar from lean and eager attention in bfloat16, each against the other and against float32 eager."""
    import cmab
    from engine.cmab import CmabConfig, load_model, rho

    arms = {("lean", "bfloat16"), ("eager", "bfloat16"), ("eager", "float32")}
    loaded = {(impl, dtype): load_model(str(model), lean=impl == "lean", dtype=dtype, device=device) for impl, dtype in sorted(arms)}
    record = {}
    for seq in seqs:
        model0, processor = loaded[("eager", "float32")]
        inputs, spans = cmab.build_inputs(processor, model0, seq)
        inputs = cmab.on_device(inputs, device)
        rhos = {}
        for (impl, dtype), (m, _) in sorted(loaded.items()):
            masses = cmab.masses_fn(m, impl, device)(inputs, spans)
            rhos[f"{impl}_{dtype}"] = {f"rho_{mode}": rho(masses, spans, CmabConfig(mode=mode)).rho_bar for mode in ("paper", "code")}
        pairs = {"lean_vs_eager_bf16": ("lean_bfloat16", "eager_bfloat16"), "lean_bf16_vs_eager_fp32": ("lean_bfloat16", "eager_float32"),
                 "eager_bf16_vs_eager_fp32": ("eager_bfloat16", "eager_float32")}
        errors = {name: cmab.rho_errors(rhos[a], rhos[b]) for name, (a, b) in pairs.items()}
        record[cmab.seq_key(seq)] = {"rho": rhos, "max_abs_err": {k: e[0] for k, e in errors.items()},
                                     "max_rel_err": {k: e[1] for k, e in errors.items()}}
    return record


def cmab_p4(model: Path, seqs, device: str) -> dict:
    import cmab

    return cmab.measure_p4(model, seqs, ["alloc"], device, "float32", log=lambda *a: print("cmab_p4", *a, flush=True))


def machine() -> dict:
    import torch
    import transformers

    cuda = torch.cuda.is_available()
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "accelerator": torch.cuda.get_device_name() if cuda else None,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def smoke_inputs(tmp: Path) -> tuple[Path, Path, Path]:
    """(model for every part, corpus, CMAB model) at toy sizes, built here in seconds."""
    import cmab
    from engine.model.tiny import TextTowerConfig
    from engine.synth import build_corpus
    from engine.synth.config import SynthConfig

    small = cmab.build_model(tmp / "model", text=TextTowerConfig(), image_px=112)
    build_corpus(SynthConfig(train_per_family=0, val_per_family=0, test_per_family=1), tmp / "corpus")
    return small, tmp / "corpus", small


def lent_inputs(args, tmp: Path) -> tuple[Path, Path, Path]:
    import cmab

    model, corpus = Path(args.model), Path(args.corpus)
    for path in (model / "config.json", corpus / "test"):
        if not path.exists():
            raise SystemExit(f"{path} missing: run `bash benchmarks/gpu/run.sh prepare` on the development machine first (see run.sh)")
    return model, corpus, cmab.build_model(tmp / "cmab_model")


def run(args) -> int:
    from common import per_family
    from engine.data.shards import iter_samples

    sizes = SMOKE if args.cpu_smoke else GPU
    out = Path(args.out)
    record = {"what": __doc__.split("\n\n")[0], "cpu_smoke": args.cpu_smoke, "sizes": asdict(sizes),
              "not_run_on_lent_machine": NOT_ON_LENT_MACHINE, "machine": machine(), "parts": {}, "part_wall_s": {}}
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        model, corpus, cmab_model = (smoke_inputs if args.cpu_smoke else lambda t: lent_inputs(args, t))(Path(tmp))
        record["model"], record["corpus"] = model.name, corpus.name
        pism, gen = scoring_config(sizes.overrides)
        samples = per_family(iter_samples(corpus / "test"), sizes.p3_per_family)
        parts = {
            "seeded_sampling": lambda: seeded_sampling(model, samples, pism, gen, sizes.devices, sizes.seeded_requests,
                                                       sizes.seeded_test_batch),
            "cmab_bf16": lambda: cmab_bf16(cmab_model, sizes.bf16_seqs, sizes.device),
            "cmab_p4": lambda: cmab_p4(cmab_model, sizes.p4_seqs, sizes.device),
            "p3_hf": lambda: p3_hf(model, samples, pism, gen, sizes.device, sizes.hf_batch_size),
        }
        for name in args.parts or list(parts):
            t0 = time.time()
            try:
                record["parts"][name] = parts[name]()
            except Exception:  # noqa: BLE001 -- one failed part must not cost the lease the others' figures
                record["parts"][name] = {"error": traceback.format_exc()[-4000:]}
                failed = True
            record["part_wall_s"][name] = round(time.time() - t0, 1)
            _write(out, record)
            print(name, json.dumps(record["parts"][name])[:2000], flush=True)
    return 1 if failed else 0


def _write(out: Path, record: dict) -> None:
    from engine.publish import publish_text

    out.parent.mkdir(parents=True, exist_ok=True)
    publish_text(out, json.dumps(record, indent=2) + "\n")  # whole or not at all: the run may be stopped at any moment


def prepare(carry: Path) -> None:
    """Here, before a lease: the warm model, its corpus's test split and the missing wheels into `carry`."""
    from engine.config import load_config
    from engine.paths import cache_root
    from rl.warmstart import WarmstartConfig, ensure_corpus, ensure_warmstart

    ws = load_config(WarmstartConfig, REPO / "configs" / "warmstart" / "tiny.yaml")
    model, corpus = ensure_warmstart(ws), ensure_corpus(ws.synth, cache_root(ws.cache_dir))
    shutil.rmtree(carry, ignore_errors=True)
    shutil.copytree(model, carry / "model")
    shutil.copytree(corpus / "test", carry / "corpus" / "test")
    shutil.copy(corpus / "manifest.json", carry / "corpus" / "manifest.json")
    pins = [f"{name}=={metadata.version(name)}" for name in WHEELS]
    platforms = [a for p in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
                 for a in ("--platform", p)]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", LENT_PYTHON,
                    "--implementation", "cp", *platforms, "-d", str(carry / "wheels"), *pins], check=True)
    size = sum(f.stat().st_size for f in carry.rglob("*") if f.is_file())
    print(f"{carry}: {size / 2**20:.1f} MiB ({', '.join(pins)})")
    if size > CARRY_LIMIT:
        raise SystemExit(f"{carry} is {size / 2**20:.1f} MiB: over {CARRY_LIMIT >> 20} MiB, the repository would not fit beside it")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepare", action="store_true", help="here: fill benchmarks/gpu/carry/ for a lent machine, then stop")
    parser.add_argument("--cpu-smoke", action="store_true", help="every part on CPU at toy sizes (seconds to minutes), models built here")
    parser.add_argument("--model", default=str(CARRY / "model"), help="warm-started model folder (lent machine)")
    parser.add_argument("--corpus", default=str(CARRY / "corpus"), help="corpus folder with a test/ split (lent machine)")
    parser.add_argument("--parts", nargs="+", choices=["seeded_sampling", "cmab_bf16", "cmab_p4", "p3_hf"])
    parser.add_argument("--out", help="default: benchmarks/results/gpu.json; with --cpu-smoke a file in the temp folder (never the results)")
    args = parser.parse_args()
    args.out = args.out or (Path(tempfile.gettempdir()) / "gradus-gpu-smoke.json" if args.cpu_smoke else REPO / "benchmarks" / "results" / "gpu.json")
    if args.prepare:
        prepare(CARRY)
        return
    sys.exit(run(args))


if __name__ == "__main__":
    main()
