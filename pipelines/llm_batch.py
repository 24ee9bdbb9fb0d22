"""Plain batch generation on ray.data.llm: evaluation's draws and `gradus generate` on the vLLM backend.

Every draw is one row through `ray.data.llm.build_processor(vLLMEngineProcessorConfig)`:
- images: loaded by us under the job's image policy (roots, size limits: nothing outside the
  roots is read) and handed over as PNG data URLs (lossless), which the processor's multimodal
  stage decodes;
- prompt: the processor's chat-template stage in the "openai" content format, the format vLLM's
  own chat entry point picks for Qwen2-VL templates. Its default ("string") puts a newline after
  every image, a prompt the model was not trained on and the actor path never sends;
- engine: the arguments VLLMBackend starts its engine with (engine_args); the processor's
  tokenizer and detokenizer stages are off, so vLLM tokenizes and detokenizes as in the actor path;
- sampling: every row carries its own SamplingParams with its seed (draw d of item i:
  draw_seed(seed, i, 0.0, d)), so a draw is the same on either path and in any batch.

What ray.data.llm 2.60 does not do, and is done here:
- finish reason: its rows carry the text and token ids but not vLLM's finish reason;
  `StopRule.finish` recovers it from them with vLLM's own stop rule;
- verification: each draw is judged after the processor by its sample's own verifier;
- resume: the driver collects an item's draws and writes the item once all are in
  (`grouped_items`); a kill loses the items in flight, never part of one;
- rows that cannot be prompted (bad structure, unreadable image, placeholder mismatch): a second
  pass over the same rows, without the engine, records them with their reason (`error_frames`);
- engine stop: its engine stage gives the engine core vLLM's default 5 s to stop, too little
  for an ordered stop; ours waits as VLLMBackend does (pipelines/llm_engine_stage.py).
"""
from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

from engine.config import ConfigError, from_dict
from engine.data.images import ImagePolicy
from engine.generation.base import Generation, GenerationConfig
from engine.generation.verified import ENGINE_ERROR, Verified, attach_verdicts, engine_failure
from engine.generation.vllm_backend import engine_args, sampling_args

# The processor's light stages (multimodal parsing, chat template, pre/postprocess) reserve no
# CPU: the engine's replica takes the pool's CPUs and the read tasks theirs, as with an actor pool.
# Reserving even 0.1 each deadlocked a 2-CPU node (engine 1 + read task 1 + stages > 2: the read never ran).
CPU_STAGE_CPUS = 0
ENGINE_ERROR_COLUMN = "__inference_error__"  # set by ray.data.llm on a row the engine failed (should_continue_on_error)


# ----- rows in -----

# "auto": ray.data.llm on the vLLM backend, the actor pool on the HF backend (ray.data.llm runs vLLM only).
RUNNERS = ("auto", "actor", "ray_data_llm")


def check_runner(runner: str, backend: str, job: str) -> None:
    """`runner` picks how a batch-generation job's draws run; ray.data.llm exists for vLLM only."""
    if runner not in RUNNERS:
        raise ConfigError(f"{job}.runner {runner!r} not in {RUNNERS}")
    if runner == "ray_data_llm" and backend != "vllm":
        raise ConfigError(f"{job}.runner=ray_data_llm needs generation.backend=vllm (got {backend!r}); the HF backend runs on the actor pool")


def resolve_runner(runner: str, backend: str) -> str:
    """The runner a job uses: "auto" is ray.data.llm wherever vLLM generates."""
    if runner == "auto":
        return "ray_data_llm" if backend == "vllm" else "actor"
    return runner


def data_url(image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def chat_messages(sample, images) -> list[dict]:
    """The prompt turns in OpenAI chat form, images as data URLs (what the processor's multimodal stage reads)."""
    from engine.model.chat import to_chat

    chat = to_chat(sample.prompt_messages, images, backend="vllm")
    for msg in chat:
        if isinstance(msg["content"], list):
            msg["content"] = [{"type": "image_url", "image_url": {"url": data_url(p["image_pil"])}} if p["type"] == "image_pil" else p
                              for p in msg["content"]]
    return chat


def prepare(raw: dict, policy: ImagePolicy) -> tuple[dict, Any, list | None, tuple[str, str] | None]:
    """(row stub, sample, chat, None) for a row that can be prompted, else (stub, None, None, (code, detail)):
    a data reason code, or engine_error when the prompt cannot be built (as the actor path records it)."""
    from engine.data.reasons import SampleError
    from engine.data.sample import Sample, validate_sample

    stub = {"id": str(raw.get("id")), "task": raw.get("task"), "split": raw.get("split")}
    try:
        sample = validate_sample(Sample.from_row(raw), policy, decode=False)
        images = sample.load_images(policy)
    except SampleError as err:
        return stub, None, None, (err.reason.value, err.detail)
    try:
        return stub, sample, chat_messages(sample, images), None
    except ValueError as exc:
        return stub, None, None, engine_failure(exc)


PROMPT_COLUMNS = ("id", "task", "split", "messages_json", "verifier", "answer", "verifier_params", "draw", "seed", "source")


def prompt_rows(batch, images: dict, draws: int, seed: int, per_draw_seeds: bool, carry_source: bool = False):
    """`draws` rows per promptable sample row: the chat (JSON), the draw's seed and what the verifier needs.
    `carry_source`: draw 0 also carries the input row itself (pickled), for a job that needs the
    sample after its draws (rejection sampling writes SFT samples from it); the other draws carry b""."""
    import pickle

    import pandas as pd

    from engine.generation.seeds import draw_seed

    policy = from_dict(ImagePolicy, images)
    rows = []
    for raw in batch.to_dict("records"):
        stub, sample, chat, error = prepare(raw, policy)
        if error:
            continue
        common = stub | {"messages_json": json.dumps(chat), "verifier": sample.verifier, "answer": sample.answer,
                         "verifier_params": json.dumps(sample.verifier_params)}
        rows += [common | {"draw": d, "seed": draw_seed(seed, sample.id, 0.0, d) if per_draw_seeds else seed,
                           "source": pickle.dumps(raw) if carry_source and d == 0 else b""} for d in range(draws)]
    return pd.DataFrame(rows, columns=list(PROMPT_COLUMNS))


def error_frames(ds, images: dict, error_frame: Callable) -> Iterator:
    """The rows that cannot be prompted, as `error_frame(rows of (stub, code, detail))` frames."""
    frames = ds.map_batches(_errors, fn_kwargs={"images": images, "error_frame": error_frame}, batch_format="pandas",
                            num_cpus=CPU_STAGE_CPUS)
    yield from (f for f in frames.iter_batches(batch_format="pandas", batch_size=None) if len(f))


def _errors(batch, images: dict, error_frame: Callable):
    policy = from_dict(ImagePolicy, images)
    failed = []
    for raw in batch.to_dict("records"):
        stub, _, _, error = prepare(raw, policy)
        if error:
            failed.append((stub, *error))
    return error_frame(failed)


# ----- the processor -----

def build(gen: GenerationConfig, actors, batch_rows: int):
    """The ray.data.llm processor: one vLLM engine per replica, `actors` sizing and placing the replicas."""
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    from pipelines.llm_engine_stage import use_ordered_stop
    from pipelines.placement import ACTOR_ENV

    on_cpu = not actors.num_gpus
    env = dict(ACTOR_ENV)  # the engine is stopped in the stage's teardown, in order (pipelines/placement.py)
    if actors.omp_threads:
        env["OMP_NUM_THREADS"] = str(actors.omp_threads)
    if on_cpu:
        env["VLLM_CPU_KVCACHE_SPACE"] = str(gen.cpu_kvcache_gib)
    # One bundle per replica: the engine's CPUs (and GPUs) as an actor of the pool would take them.
    bundle = {"CPU": actors.num_cpus, **({"GPU": actors.num_gpus} if actors.num_gpus else {}), **actors.resources}
    light = {"enabled": True, "num_cpus": CPU_STAGE_CPUS}
    config = vLLMEngineProcessorConfig(
        model_source=gen.model_path, engine_kwargs=engine_args(gen, on_cpu=on_cpu), batch_size=batch_rows,
        concurrency=(actors.min_actors, actors.max_actors), accelerator_type=actors.accelerator_type or None,
        placement_group_config={"bundles": [bundle]},
        runtime_env={"env_vars": env, "worker_process_setup_hook": "pipelines.llm_batch.guard_worker"},
        prepare_multimodal_stage=light | {"chat_template_content_format": "openai"}, chat_template_stage=light,
        tokenize_stage={"enabled": False}, detokenize_stage={"enabled": False},
        log_engine_metrics=False,  # its metrics need a Prometheus port we do not open
        should_continue_on_error=True,  # a failing request is that item's engine_error, not the job's end
    )
    sampling = sampling_args(gen, None)
    processor = build_processor(config, preprocess=lambda row: _request(row, sampling), postprocess=_result,
                                preprocess_map_kwargs={"num_cpus": CPU_STAGE_CPUS}, postprocess_map_kwargs={"num_cpus": CPU_STAGE_CPUS})
    use_ordered_stop(processor)  # the engine stopped as VLLMBackend stops it: no leaked shared memory
    return processor


def guard_worker() -> None:
    """Run by Ray as each of the processor's workers starts: what the worker starts (the vLLM
    engine's processes) dies with it, however it dies. Our VLLMBackend does this in its actor
    (engine/ray_session.guard_actor_processes); ray.data.llm's engine stage has no such hook. Seen
    without it: a killed job left the engine core and its worker running."""
    import os

    from engine.ray_session import start_group_watchdog

    if os.getpgid(0) == os.getpid():  # Ray put the worker in a process group of its own
        start_group_watchdog()


def _request(row: dict, sampling: dict) -> dict:
    return {"messages": json.loads(row["messages_json"]), "messages_json": None, "sampling_params": sampling | {"seed": int(row["seed"])}}


DRAW_COLUMNS = ("id", "task", "split", "draw", "verifier", "answer", "verifier_params", "source")


def _result(row: dict) -> dict:
    tokens = list(row["generated_tokens"])
    return {k: row[k] for k in DRAW_COLUMNS} | {"text": row["generated_text"], "num_tokens": int(row["num_generated_tokens"]),
                                                 "last_token": int(tokens[-1]) if tokens else -1,
                                                 "num_input_tokens": int(row["num_input_tokens"]), ENGINE_ERROR_COLUMN: ""}


def _draw(row: dict) -> dict:
    """One schema for every draw row: a failed request comes back from ray.data.llm as its whole input row."""
    out = {k: row.get(k) for k in DRAW_COLUMNS}
    error = row.get(ENGINE_ERROR_COLUMN) or ""
    out.update(error=error, text=row.get("text") if not error else None, num_tokens=row.get("num_tokens"), last_token=row.get("last_token"),
               num_input_tokens=row.get("num_input_tokens"))
    return out


def draw_frames(ds, gen: GenerationConfig, actors, images: dict, draws: int, seed: int, per_draw_seeds: bool,
                carry_source: bool = False) -> Iterator:
    """Every draw of the promptable rows of `ds`, as frames of draw rows (in no order)."""
    prompts = ds.map_batches(prompt_rows, fn_kwargs={"images": images, "draws": draws, "seed": seed, "per_draw_seeds": per_draw_seeds,
                                                     "carry_source": carry_source},
                             batch_format="pandas", num_cpus=CPU_STAGE_CPUS)
    processor = build(gen, actors, batch_rows=actors.batch_size * draws)
    return processor(prompts).map(_draw, num_cpus=CPU_STAGE_CPUS).iter_batches(batch_format="pandas", batch_size=None)


# ----- rows out -----

@dataclass(frozen=True)
class StopRule:
    """vLLM's stop rule, to recover a finish reason from a draw's tokens: an end-of-sequence token or
    a stop string ends it as "stop" (checked first, as vLLM does); otherwise reaching max_tokens
    or the model length ends it as "length"."""

    stop_ids: frozenset[int]
    stop: tuple[str, ...]
    max_tokens: int
    max_model_len: int

    @classmethod
    def of(cls, gen: GenerationConfig) -> "StopRule":
        """The rule vLLM applies for `gen`: the tokenizer's eos and the model's generation_config eos ids end a draw."""
        from transformers import AutoTokenizer
        from transformers import GenerationConfig as HFGenerationConfig

        ids = {AutoTokenizer.from_pretrained(gen.model_path, local_files_only=True).eos_token_id}
        try:
            eos = HFGenerationConfig.from_pretrained(gen.model_path, local_files_only=True).eos_token_id
        except OSError:  # no generation_config.json: the tokenizer's eos only
            eos = None
        ids.update(eos if isinstance(eos, list) else [eos])
        return cls(frozenset(i for i in ids if i is not None), tuple(gen.stop), gen.max_new_tokens, gen.max_model_len)

    def finish(self, text: str, num_tokens: int, last_token: int, num_input_tokens: int) -> str:
        if last_token in self.stop_ids or any(text.endswith(s) for s in self.stop):
            return "stop"
        if num_tokens >= self.max_tokens or num_input_tokens + num_tokens >= self.max_model_len:
            return "length"
        return "stop"


def grouped_items(frames: Iterable, draws: int, rule: StopRule, item_frame: Callable, with_source: bool = False) -> Iterator:
    """Collect each item's `draws` draw rows; every frame of newly complete items becomes
    `item_frame([(stub, Verified)])`, or `item_frame([(stub, Verified, input row)])` with
    `with_source` (the row draw_frames carried with `carry_source`). An item still missing draws
    at the end is a lost row: an error."""
    import pickle

    pending: dict[str, list[dict]] = {}
    for frame in frames:
        complete = []
        for row in frame.to_dict("records"):
            got = pending.setdefault(row["id"], [])
            got.append(row)
            if len(got) == draws:
                complete.append(sorted(pending.pop(row["id"]), key=lambda r: r["draw"]))
        if complete:
            verified = verify_items(complete, rule)
            if with_source:
                verified = [(stub, res, pickle.loads(rows[0]["source"])) for (stub, res), rows in zip(verified, complete)]
            yield item_frame(verified)
    if pending:
        raise RuntimeError(f"ray.data.llm returned fewer than {draws} draws for {len(pending)} items, e.g. {sorted(pending)[:3]}")


def verify_items(items: Sequence[list[dict]], rule: StopRule) -> list[tuple[dict, Verified]]:
    """Each item's draws judged by its own verifier; an item with a failed request is an engine_error (no completions)."""
    from engine.verifiers import verify_many

    results, completions, calls = [], [], []
    for rows in items:
        res = Verified()
        failed = next((r for r in rows if r["error"]), None)
        if failed:
            res.error, res.error_detail = ENGINE_ERROR, failed["error"][:500]
            gens = []
        else:
            gens = [Generation(r["text"], int(r["num_tokens"]), rule.finish(r["text"], int(r["num_tokens"]), int(r["last_token"]),
                                                                            int(r["num_input_tokens"]))) for r in rows]
            params = json.loads(rows[0]["verifier_params"])
            calls += [(rows[0]["verifier"], g.text, rows[0]["answer"], params) for g in gens]
        results.append(res)
        completions.append(gens)
    attach_verdicts(results, completions, verify_many(calls))
    return [({k: rows[0][k] for k in ("id", "task", "split")}, res) for rows, res in zip(items, results)]
