"""Ray Data pipeline: canonical shards -> one completion per row (vLLM or HF) -> verified outputs.

On the vLLM backend this is plain batch generation on ray.data.llm (pipelines/llm_batch.py); on
the HF backend an actor pool, each actor holding one model for the whole job and getting whole
batches. The results stream into `<output>/part-*.parquet`, each file written whole. Bad rows are recorded as errors
with reason codes, never as wrong answers, and never stop the job. Input rows are read as every
pipeline reads them (pipelines/inputs.py: no converter's quarantine/, each id once; a repeated id's
later copies are `duplicate_id` rows in `<output>/duplicate_ids.parquet`); every output file has
one fixed schema.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from engine import __version__
from engine.ray_session import init_ray
from engine.config import ConfigError, config_hash, from_dict, to_dict
from engine.data.images import ImagePolicy
from engine.data.reasons import SampleError
from engine.data.sample import Sample, validate_sample
from engine.data.shards import index_shards
from engine.generation.base import GenerationConfig, GenerationRequest
from engine.generation.factory import make_backend
from engine.publish import publish_file
from pipelines.inputs import read_rows
from pipelines.llm_batch import check_runner, resolve_runner
from pipelines.resumable import output_schema, typed_table


OUTPUT_COLUMNS = ["id", "task", "split", "output", "num_tokens", "finish_reason", "extracted", "score", "passed", "verify_reason", "error", "error_detail"]
OUTPUT_SCHEMA = output_schema(OUTPUT_COLUMNS, num_tokens=pa.int64(), score=pa.float64(), passed=pa.bool_())


@dataclass
class ActorPoolConfig:
    """How a stage's actor pool is sized and placed (config: actors.*)."""

    min_actors: int = 1
    max_actors: int = 1
    num_cpus: float = 1.0  # per actor; keep below the node's CPUs so read/write tasks still run
    num_gpus: float = 0.0
    batch_size: int = 32
    # Ray sets OMP_NUM_THREADS = num_cpus in an actor; 0 keeps Ray's value, N sets it to N. For the
    # HF backend these are the model's compute threads. For vLLM on CPU they are only the front end's
    # (its image processor): the engine worker binds its own cores (VLLM_CPU_OMP_THREADS_BIND), and a
    # 2-thread front end fighting it halved PISM throughput on 2 cores (docs/pism.md, P2): use 1.
    omp_threads: int = 0
    accelerator_type: str = ""  # e.g. "H100": only nodes with Ray's accelerator_type:H100 resource
    resources: dict[str, float] = field(default_factory=dict)  # custom resources per actor
    spread: bool = True  # SPREAD actors over nodes; False packs them

    def validate(self) -> None:
        from pipelines.placement import validate_pool

        validate_pool(self)  # bounds, resources, placement
        if self.omp_threads < 0:
            raise ConfigError("actors.omp_threads must be >= 0")

    def remote_args(self) -> dict:
        """Ray Data map_batches arguments placing one actor of this pool (pipelines/placement.py)."""
        from pipelines.placement import map_batches_kwargs

        return map_batches_kwargs(self)


@dataclass
class GenerateJobConfig:
    input: str = ""  # canonical parquet shards
    output: str = ""  # directory for result parquet
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    images: ImagePolicy = field(default_factory=ImagePolicy)  # image roots and limits, as `gradus data convert` takes them
    actors: ActorPoolConfig = field(default_factory=ActorPoolConfig)
    runner: str = "auto"  # "auto" (ray.data.llm on vLLM, the actor pool on HF), "actor" or "ray_data_llm"; see EvalJobConfig.runner
    limit: int = 0  # 0 = all rows; else the first `limit` ids in shard order
    seed: int = 0
    model_id: str = ""  # the model's name in every output's provenance (default: the model path)

    def require_paths(self) -> None:
        # Checked at run time, not load time: the default file cannot know the user's paths.
        if not self.input or not self.output:
            raise ConfigError("generate: input and output are required (e.g. input=path/to/shards)")
        check_runner(self.runner, self.generation.backend, "generate")


class GenerateActor:
    """One engine per actor; __call__ turns a batch of sample rows into result rows."""

    def __init__(self, generation: dict, seed: int, model_id: str, config_hash: str, images: dict | None = None):
        self.cfg = from_dict(GenerationConfig, generation)
        self.backend = make_backend(self.cfg)
        self.seed = seed
        self.provenance = {"model_id": model_id, "config_hash": config_hash, "seed": seed, "gradus_version": __version__}
        self.policy = from_dict(ImagePolicy, images or {})

    def __call__(self, batch):
        from engine.generation.verified import generate_and_verify

        rows, requests, targets = [], [], []
        for raw in batch.to_dict("records"):
            row = _blank(id=str(raw.get("id")), task=raw.get("task"), split=raw.get("split"))
            try:
                # the structure every stage checks (an unknown verifier among it); images decoded once, here
                sample = validate_sample(Sample.from_row(raw), self.policy, decode=False)
                images = sample.load_images(self.policy)
            except SampleError as err:
                row.update(error=err.reason.value, error_detail=err.detail)
                rows.append(row)
                continue
            requests.append([GenerationRequest(sample.prompt_messages, images, seed=self.seed)])
            targets.append((row, sample))
            rows.append(row)
        # one engine call for the batch: if it fails, the batch's rows are engine errors, not wrong answers
        verified = generate_and_verify([s for _, s in targets], requests, self.backend)
        for (row, _), v in zip(targets, verified):
            _fill(row, v)
        return _frame(rows, self.provenance)


def _blank(**values) -> dict:
    return {c: None for c in OUTPUT_COLUMNS} | values


def _fill(row: dict, v) -> dict:
    """A row's result columns from its one verified completion (`Verified`)."""
    row.update(error=v.error, error_detail=v.error_detail)
    if not v.generations:  # the engine failed
        return row
    gen, result = v.generations[0], v.verdicts[0]
    # verify_reason: why the answer could not be judged ("" when it was)
    row.update(output=gen.text, num_tokens=gen.num_tokens, finish_reason=gen.finish_reason, verify_reason=result.reason)
    if not v.error:  # a verifier_error row gets no verdict: an error, not a wrong answer
        row.update(extracted=result.extracted, score=result.score, passed=result.passed)
    return row


def _frame(rows: list[dict], provenance: dict):
    import pandas as pd

    frame = pd.DataFrame(rows, columns=OUTPUT_COLUMNS)
    for key, value in provenance.items():
        frame[key] = value
    return frame


def error_frame(failed, provenance: dict):
    """Rows that could not be prompted, from (row stub, reason code, detail)."""
    return _frame([_blank(**stub, error=code, error_detail=detail) for stub, code, detail in failed], provenance)


def item_frame(items, provenance: dict):
    """Rows generated on, from (row stub, `Verified`)."""
    return _frame([_fill(_blank(**stub), v) for stub, v in items], provenance)


def _result_frames(cfg: "GenerateJobConfig", ds, provenance: dict, chash: str):
    """Result frames for the rows of `ds`: ray.data.llm on the vLLM backend (plain batch generation,
    pipelines/llm_batch.py), the actor pool on the HF backend."""
    images = to_dict(cfg.images.absolute())
    if resolve_runner(cfg.runner, cfg.generation.backend) == "ray_data_llm":
        from pipelines import llm_batch

        yield from llm_batch.error_frames(ds, images, partial(error_frame, provenance=provenance))
        draws = llm_batch.draw_frames(ds, cfg.generation, cfg.actors, images, 1, cfg.seed, per_draw_seeds=False)
        yield from llm_batch.grouped_items(draws, 1, llm_batch.StopRule.of(cfg.generation), partial(item_frame, provenance=provenance))
        return
    results = ds.map_batches(GenerateActor, fn_constructor_kwargs={"generation": to_dict(cfg.generation), "seed": cfg.seed,
                                                                   "model_id": provenance["model_id"], "config_hash": chash, "images": images},
                             batch_format="pandas", **cfg.actors.remote_args())
    yield from results.iter_batches(batch_format="pandas", batch_size=None)


def _write_duplicates(index, out: Path, provenance: dict) -> None:
    """The input's repeated ids (each copy after the first) as error rows beside the results."""
    if index.duplicates:
        rows = [d.record() | provenance for d in index.duplicates]
        pq.write_table(pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA), out / "duplicate_ids.parquet")


def _read_results(out: Path):
    """Every result file in `out`, file by file: an empty input writes none, which Ray's reader refuses."""
    tables = [pq.read_table(f, schema=OUTPUT_SCHEMA) for f in sorted(out.glob("*.parquet"))]
    return pa.concat_tables([OUTPUT_SCHEMA.empty_table(), *tables]).to_pandas()


def run_generate(cfg: GenerateJobConfig) -> dict:
    """Run the pipeline; returns a summary (rows, accuracy per task, errors, wall time)."""
    cfg.require_paths()
    started = time.time()
    init_ray()
    index = index_shards(cfg.input).head(cfg.limit)
    model_id, chash = cfg.model_id or cfg.generation.model_path, config_hash(cfg)
    prov = {"model_id": model_id, "config_hash": chash, "seed": cfg.seed, "gradus_version": __version__}
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    for frame in _result_frames(cfg, read_rows(index), prov, chash):
        if len(frame):  # an empty input yields an empty block, without the result columns
            publish_file(out / f"part-{uuid.uuid4().hex}.parquet", lambda tmp, f=frame: pq.write_table(typed_table(f, OUTPUT_SCHEMA), tmp))
    _write_duplicates(index, out, prov)
    frame = _read_results(out)
    ok = frame[frame["error"].isna()]
    summary = {
        "rows": int(len(frame)),
        "errors": frame["error"].dropna().value_counts().to_dict(),
        "accuracy": float(ok["passed"].mean()) if len(ok) else None,
        "per_task": {t: float(g["passed"].mean()) for t, g in ok.groupby("task")},
        "tokens_generated": int(ok["num_tokens"].sum()) if len(ok) else 0,
        "backend": cfg.generation.backend,
        "model_id": model_id,
        "config_hash": config_hash(cfg),
        "gradus_version": __version__,
        "wall_s": round(time.time() - started, 1),
    }
    return summary
