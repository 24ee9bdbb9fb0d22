"""CMAB throughput and generations saved, on the synthetic test split with the warm tiny model.

One run, same samples (the first N of every task family), same model, same sampling settings:
1. PISM (`run_pism`, configs/pism/tiny.yaml): its clean-image pass leaves a verified answer per
   solved sample.
2. `run_cmab` reusing those answers (`responses.pism_scores`): samples/s from the start of
   streaming to the last block written (Ray Data -> CMAB actor -> parts; the actor's model load
   included; end-to-end wall incl. Ray and plots also reported), and the generations it spends.
3. `run_cmab` standalone (no PISM): generate-and-verify fallback, up to K draws per sample.
4. Baseline: the reference's solvability search (DifficultySampling CMAB/main/attention_com.py,
   re-implemented here from its description, not its code): a Monte-Carlo tree search per sample,
   up to 50 iterations; a non-terminal leaf is expanded with 3 sampled steps, then rolled out one
   sampled step at a time (at most 10) until terminal; each terminal state costs one call to a
   judge LLM; the search stops at the first judged-correct rollout. A solved sample then costs one
   more generation (the reference re-generated with output_attentions=True to measure attention).
   Step = one generation; terminal = the model ended its answer (EOS) or 10 steps. Our verifier
   stands in for the judge, and judge calls are counted as generations (the reference ran a 7B LLM
   for each). Sampling: the tiny config's temperature for every method.
Writes benchmarks/results/cmab.json keys: throughput (samples/s), generations per method, and
`generations_saved` = 1 - gradus / reference.
"""
from __future__ import annotations

import argparse
import copy
import math
import os
import platform
import random
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from common import merge_results, per_family

REPO = Path(__file__).resolve().parent.parent

MCTS_ITERATIONS, MCTS_TOP_K, MCTS_ROLLOUT = 50, 3, 10  # the reference's settings


@dataclass
class _Node:
    steps: list[str]
    terminal: bool
    parent: "_Node | None" = None
    children: list["_Node"] = field(default_factory=list)
    visits: int = 0
    value: float = 0.0

    def ucb(self, c: float = 1.0) -> float:
        if self.visits == 0:
            return math.inf
        return self.value / self.visits + c * math.sqrt(math.log(self.parent.visits) / self.visits)


def mcts_cost(sample, images, backend, rng: random.Random) -> dict:
    """Generations and judge calls the reference's search spends on one sample."""
    from engine.data.sample import Message
    from engine.generation.base import GenerationRequest
    from engine.verifiers import verify

    cost = {"generations": 0, "judge_calls": 0, "solved": False}

    def step(steps: list[str]) -> tuple[str, bool]:
        history = [Message("assistant", "".join(steps))] if steps else []
        gen = backend.generate([GenerationRequest(list(sample.prompt_messages) + history, images, seed=rng.getrandbits(62))])[0]
        cost["generations"] += 1
        return gen.text, gen.finish_reason == "stop" or len(steps) + 1 >= MCTS_ROLLOUT

    root = _Node([], False)
    for _ in range(MCTS_ITERATIONS):
        node = root
        while not node.terminal and node.children:
            node = max(node.children, key=_Node.ucb)
        if not node.terminal:
            for _ in range(MCTS_TOP_K):
                text, done = step(node.steps)
                node.children.append(_Node(node.steps + [text], done, node))
            node = rng.choice(node.children)
        steps, terminal, n = list(node.steps), node.terminal, 0
        while not terminal and n < MCTS_ROLLOUT:
            text, terminal = step(steps)
            steps.append(text)
            n += 1
        reward = 0.0
        if terminal:
            cost["judge_calls"] += 1
            reward = float(verify(sample.verifier, "".join(steps), sample.answer, sample.verifier_params).passed)
        if reward == 1.0:
            cost["solved"] = True
            cost["generations"] += 1  # the reference's separate attention generation
            break
        while node is not None:
            node.visits += 1
            node.value += reward
            node = node.parent
    return cost


def _write_input(samples, folder: Path) -> Path:
    import pyarrow.parquet as pq

    from engine.data.sample import samples_to_table

    folder.mkdir(parents=True)
    pq.write_table(samples_to_table(samples), folder / "part-00000.parquet")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-family", type=int, default=20, help="samples per task family")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "cmab.json"))
    args = parser.parse_args()

    import pandas as pd

    from engine.config import from_dict, load_config, to_dict
    from engine.data.images import ImagePolicy
    from engine.data.shards import iter_samples
    from engine.generation.base import GenerationConfig
    from engine.generation.hf_backend import HFBackend
    from pipelines.cmab import CmabJobConfig, run_cmab
    from pipelines.pism import PismJobConfig, run_pism
    from engine.paths import cache_root
    from rl.warmstart import WarmstartConfig, ensure_corpus, ensure_warmstart

    ws = load_config(WarmstartConfig, REPO / "configs" / "warmstart" / "tiny.yaml")
    model = ensure_warmstart(ws)
    corpus = ensure_corpus(ws.synth, cache_root(ws.cache_dir))
    samples = per_family(iter_samples(corpus / "test"), args.per_family)
    record: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        src = _write_input(samples, Path(tmp) / "in")

        pism = load_config(PismJobConfig, REPO / "configs" / "pism" / "tiny.yaml")
        pism.input, pism.output, pism.generation.model_path = str(src), str(Path(tmp) / "pism"), str(model)
        pism.wandb.mode = "disabled"
        pism_summary = run_pism(replace(pism, model_id=ws.model.model_id))
        scores = pd.read_parquet(Path(pism.output) / "scores.parquet")
        clean_draws = int(sum(r[0] for r in scores["runs"]))  # PISM's ratio-0 draws: already paid for PISM

        base = load_config(CmabJobConfig, REPO / "configs" / "cmab" / "tiny.yaml")
        base.input, base.model_path, base.wandb.mode = str(src), str(model), "disabled"
        base.heatmaps.per_task = 0
        runs = {}
        for name, pism_scores in (("after_pism", str(Path(pism.output) / "scores.parquet")), ("standalone", "")):
            cfg = copy.deepcopy(base)
            cfg.output, cfg.responses.pism_scores = str(Path(tmp) / f"cmab-{name}"), pism_scores
            t0 = time.time()
            summary = run_cmab(replace(cfg, model_id=ws.model.model_id))
            runs[name] = {"samples_per_s": summary["samples_per_s"], "end_to_end_samples_per_s": round(len(samples) / (time.time() - t0), 3),
                          "generations": summary["generations"], "scored": summary["scored"], "unsolved": summary["unsolved"],
                          "response_sources": summary["response_sources"]}
            print(name, runs[name], flush=True)

    gen = from_dict(GenerationConfig, {**to_dict(base.generation), "model_path": str(model), "device": "cpu"})
    backend = HFBackend(gen)
    rng = random.Random(0)
    policy = ImagePolicy()
    t0 = time.time()
    mcts = [mcts_cost(s, s.load_images(policy), backend, rng) for s in samples]
    mcts_s = time.time() - t0
    ref_gens = sum(c["generations"] for c in mcts)
    ref_judge = sum(c["judge_calls"] for c in mcts)
    ref_total = ref_gens + ref_judge
    standalone = runs["standalone"]["generations"]
    record["throughput"] = {
        "samples": len(samples),
        "cmab_after_pism": runs["after_pism"],
        "cmab_standalone": runs["standalone"],
        "pism_wall_s": pism_summary["wall_s"],
        "pism_clean_image_draws": clean_draws,
    }
    record["generations"] = {
        "reference_mcts": {"vlm_generations": ref_gens, "judge_calls": ref_judge, "total": ref_total,
                           "solved": sum(c["solved"] for c in mcts), "wall_s": round(mcts_s, 1),
                           "settings": {"iterations": MCTS_ITERATIONS, "top_k": MCTS_TOP_K, "rollout_limit": MCTS_ROLLOUT}},
        "gradus_after_pism": runs["after_pism"]["generations"],
        "gradus_standalone": standalone,
        "generations_saved_after_pism": round(1 - runs["after_pism"]["generations"] / ref_total, 4),
        "generations_saved_standalone": round(1 - standalone / ref_total, 4),
        "solved": {"reference_mcts": sum(c["solved"] for c in mcts), "gradus_after_pism": runs["after_pism"]["scored"],
                   "gradus_standalone": runs["standalone"]["scored"]},
    }
    record["throughput_machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                                    "model_id": ws.model.model_id, "temperature": gen.temperature, "max_new_tokens": gen.max_new_tokens,
                                    "fallback_backend": gen.backend, "draws": base.responses.draws}
    merge_results(Path(args.out), record)


if __name__ == "__main__":
    main()
