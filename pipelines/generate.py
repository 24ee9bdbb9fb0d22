"""Ray Data pipeline: canonical shards -> generation actor pool (vLLM or HF) -> verified outputs.

Each actor holds one engine for the whole job (engine start-up costs tens of seconds) and gets
whole batches, so vLLM batches continuously across samples. Bad rows are recorded as errors
with reason codes, never as wrong answers, and never stop the job. Input rows are read as every
pipeline reads them (pipelines/inputs.py: no converter's quarantine/, each id once; a repeated id's
later copies are `duplicate_id` rows in `<output>/duplicate_ids.parquet`); every output file has
one fixed schema.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
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
from engine.generation.base import GenerationConfig, GenerationRequest, make_backend
from pipelines.inputs import read_rows
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
    limit: int = 0  # 0 = all rows; else the first `limit` ids in shard order
    seed: int = 0

    def require_paths(self) -> None:
        # Checked at run time, not load time: the default file cannot know the user's paths.
        if not self.input or not self.output:
            raise ConfigError("generate: input and output are required (e.g. input=path/to/shards)")


class GenerateActor:
    """One engine per actor; __call__ turns a batch of sample rows into result rows."""

    def __init__(self, generation: dict, seed: int, model_id: str, config_hash: str, images: dict | None = None):
        self.cfg = from_dict(GenerationConfig, generation)
        self.backend = make_backend(self.cfg)
        self.seed = seed
        self.provenance = {"model_id": model_id, "config_hash": config_hash, "seed": seed, "gradus_version": __version__}
        self.policy = from_dict(ImagePolicy, images or {})

    def __call__(self, batch):
        import pandas as pd

        from engine.generation.verified import generate_and_verify

        rows, requests, targets = [], [], []
        for raw in batch.to_dict("records"):
            row = {c: None for c in OUTPUT_COLUMNS} | {"id": str(raw.get("id")), "task": raw.get("task"), "split": raw.get("split")}
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
            row.update(error=v.error, error_detail=v.error_detail)
            if not v.generations:  # the engine failed
                continue
            gen, result = v.generations[0], v.verdicts[0]
            # verify_reason: why the answer could not be judged ("" when it was)
            row.update(output=gen.text, num_tokens=gen.num_tokens, finish_reason=gen.finish_reason, verify_reason=result.reason)
            if not v.error:  # a verifier_error row gets no verdict: an error, not a wrong answer
                row.update(extracted=result.extracted, score=result.score, passed=result.passed)
        frame = pd.DataFrame(rows, columns=OUTPUT_COLUMNS)
        for key, value in self.provenance.items():
            frame[key] = value
        return frame


def _write_duplicates(index, out: Path, provenance: dict) -> None:
    """The input's repeated ids (each copy after the first) as error rows beside the results."""
    if index.duplicates:
        rows = [d.record() | provenance for d in index.duplicates]
        pq.write_table(pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA), out / "duplicate_ids.parquet")


def _read_results(out: Path):
    """Every result file in `out`, file by file: an empty input writes none, which Ray's reader refuses."""
    tables = [pq.read_table(f, schema=OUTPUT_SCHEMA) for f in sorted(out.glob("*.parquet"))]
    return pa.concat_tables([OUTPUT_SCHEMA.empty_table(), *tables]).to_pandas()


def run_generate(cfg: GenerateJobConfig, model_id: str = "") -> dict:
    """Run the pipeline; returns a summary (rows, accuracy per task, errors, wall time)."""
    cfg.require_paths()
    started = time.time()
    init_ray()
    index = index_shards(cfg.input).head(cfg.limit)
    model_id, chash = model_id or cfg.generation.model_path, config_hash(cfg)
    results = read_rows(index).map_batches(
        GenerateActor,
        fn_constructor_kwargs={"generation": to_dict(cfg.generation), "seed": cfg.seed, "model_id": model_id, "config_hash": chash,
                               "images": to_dict(cfg.images.absolute())},
        batch_format="pandas",
        **cfg.actors.remote_args(),
    )
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    results.map_batches(typed_table, fn_kwargs={"schema": OUTPUT_SCHEMA}, batch_format="pandas").write_parquet(str(out))
    _write_duplicates(index, out, {"model_id": model_id, "config_hash": chash, "seed": cfg.seed, "gradus_version": __version__})
    frame = _read_results(out)
    ok = frame[frame["error"].isna()]
    summary = {
        "rows": int(len(frame)),
        "errors": frame["error"].dropna().value_counts().to_dict(),
        "accuracy": float(ok["passed"].mean()) if len(ok) else None,
        "per_task": {t: float(g["passed"].mean()) for t, g in ok.groupby("task")},
        "tokens_generated": int(ok["num_tokens"].sum()) if len(ok) else 0,
        "backend": cfg.generation.backend,
        "model_id": model_id or cfg.generation.model_path,
        "config_hash": config_hash(cfg),
        "gradus_version": __version__,
        "wall_s": round(time.time() - started, 1),
    }
    return summary
