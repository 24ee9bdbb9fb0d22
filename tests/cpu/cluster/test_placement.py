"""Actor pool placement (map_batches arguments per stage) and Ray Data sizing for image rows."""
import dataclasses
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.config import ConfigError, from_dict, to_dict
from pipelines.cmab import CmabJobConfig
from pipelines.generate import ActorPoolConfig
from pipelines.placement import (ACTOR_ENV, MiB, Placement, map_batches_kwargs, mean_row_bytes, placement_of, plan_image_rows,
                                 with_placement)


def test_map_batches_kwargs_carry_bounds_resources_and_placement():
    pool = ActorPoolConfig(min_actors=2, max_actors=16, num_cpus=4, num_gpus=1, batch_size=64, omp_threads=2)
    kw = map_batches_kwargs(pool, Placement(accelerator_type="H100", resources={"pool_a": 1}))
    strategy = kw.pop("compute")
    assert (strategy.min_size, strategy.max_size) == (2, 16)
    assert kw == {"num_cpus": 4, "num_gpus": 1, "batch_size": 64,
                  "runtime_env": {"env_vars": {**ACTOR_ENV, "OMP_NUM_THREADS": "2"}},
                  "scheduling_strategy": "SPREAD", "resources": {"pool_a": 1}, "accelerator_type": "H100"}
    packed = map_batches_kwargs(ActorPoolConfig(), Placement(spread=False))
    assert packed["scheduling_strategy"] == "DEFAULT" and "resources" not in packed and "accelerator_type" not in packed
    assert packed["runtime_env"] == {"env_vars": ACTOR_ENV}  # every stage's actors stop their engines before Ray kills their children
    # The current ActorPoolConfig.remote_args() is map_batches_kwargs without the placement keys.
    base = pool.remote_args()
    assert {k: v for k, v in map_batches_kwargs(pool).items() if k != "compute"} == \
        {k: v for k, v in base.items() if k != "compute"} | {"scheduling_strategy": "SPREAD"}


def test_placement_fields_are_read_from_an_extended_pool_config():
    @dataclasses.dataclass
    class Extended(ActorPoolConfig):  # ActorPoolConfig once it carries the placement fields
        accelerator_type: str = ""
        resources: dict[str, float] = dataclasses.field(default_factory=dict)
        spread: bool = True

    pool = Extended(num_gpus=1, accelerator_type="A100", resources={"x": 2}, spread=False)
    assert placement_of(pool) == Placement("A100", {"x": 2}, False)
    assert map_batches_kwargs(pool)["accelerator_type"] == "A100"


def test_with_placement_keeps_the_serialised_job_config_unchanged():
    cfg = from_dict(CmabJobConfig, {"input": "i", "output": "o", "model_path": "m", "actors": {"max_actors": 3}})
    before = to_dict(cfg)
    cfg.actors = with_placement(cfg.actors, Placement(accelerator_type="SIM", resources={"fake_gpu": 1}))
    assert to_dict(cfg) == before  # what the actors parse back: no unknown keys
    assert from_dict(CmabJobConfig, to_dict(cfg)).actors == from_dict(CmabJobConfig, before).actors
    kw = cfg.actors.remote_args()
    assert kw["resources"] == {"fake_gpu": 1} and kw["accelerator_type"] == "SIM" and kw["compute"].max_size == 3


@pytest.mark.parametrize("placement, pool, message", [
    (Placement(resources={"GPU": 1}), ActorPoolConfig(), "Ray's own resource"),
    (Placement(resources={"accelerator_type:H100": 1}), ActorPoolConfig(), "actors.accelerator_type"),
    (Placement(resources={"x": 0}), ActorPoolConfig(), "must be > 0"),
    (Placement(accelerator_type="H100"), ActorPoolConfig(num_gpus=0), "needs actors.num_gpus"),
    (Placement(), ActorPoolConfig(min_actors=3, max_actors=2), "min_actors <= max_actors"),
])
def test_bad_placements_are_config_errors(placement, pool, message):
    with pytest.raises(ConfigError, match=message):
        map_batches_kwargs(pool, placement)


def test_image_row_plan_caps_blocks_and_sizes_the_object_store():
    small = plan_image_rows(row_bytes=3_000, batch_size=32, rows_per_block=128, max_actors=4)
    assert small.rows_per_block == 128 and small.notes == [] and small.target_max_block_size == 16 * MiB
    assert small.read_op_min_num_blocks == 8
    big = plan_image_rows(row_bytes=2 * MiB, batch_size=64, rows_per_block=128, max_actors=16, actors_per_node=8)
    assert big.rows_per_block == 32 and big.block_bytes == 64 * MiB  # 64 MiB budget / 2 MiB rows
    assert big.target_max_block_size == 96 * MiB and len(big.notes) == 2  # lowered, and below batch_size
    assert big.object_store_per_node == 8 * 2 * 2 * 64 * MiB * 2  # 2 GiB for 8 actors on a node
    with pytest.raises(ConfigError):
        plan_image_rows(row_bytes=0, batch_size=1, rows_per_block=1, max_actors=1)


def test_plan_applies_to_the_data_context():
    from ray.data import DataContext

    ctx = DataContext.get_current().copy()
    plan = plan_image_rows(row_bytes=MiB, batch_size=16, rows_per_block=64, max_actors=4)
    plan.apply(ctx)
    assert (ctx.target_max_block_size, ctx.read_op_min_num_blocks, ctx.max_tasks_in_flight_per_actor) == (96 * MiB, 8, 2)


def test_mean_row_bytes_reads_parquet_metadata(tmp_path):
    rng = random.Random(0)
    blobs = [rng.randbytes(100_000) for _ in range(10)]  # distinct incompressible bytes, like encoded images
    pq.write_table(pa.table({"id": [str(i) for i in range(10)], "img": blobs}), tmp_path / "a.parquet")
    assert 100_000 <= mean_row_bytes(tmp_path) <= 110_000
    with pytest.raises(ConfigError):
        mean_row_bytes(tmp_path / "nothing")
