"""Where a stage's actor pool runs on a cluster, and how Ray Data is sized for image rows.

Every scoring stage (generate, PISM, CMAB) is one `map_batches` over an autoscaling actor pool.
`map_batches_kwargs(pool)` turns the stage's pool config into those `map_batches` arguments:

- autoscaling bounds: `ActorPoolStrategy(min_size, max_size)`; Ray Data starts `min_actors`
  and adds actors while its queue stays above 1.75 tasks per actor slot, up to `max_actors`;
- resources per actor: `num_cpus`, `num_gpus`, custom `resources` (e.g. `{"fake_gpu": 1}` on a
  simulated cluster, or a node-pool marker) and `accelerator_type` (e.g. "H100": Ray then places
  the actor only on nodes advertising the resource `accelerator_type:H100`, which Ray sets on
  GPU nodes by itself);
- spreading: `scheduling_strategy="SPREAD"` (the default, `spread=True`): Ray walks the nodes that
  can take the actor round-robin, so actors created together land on different nodes and one
  node's loss takes out one actor, not the pool. It is best effort: an actor added later may land
  beside an earlier one (seen on the simulated cluster, docs/cluster.md). Where one actor per node
  must hold, ask for a per-node resource (e.g. all of a node's GPUs, or a custom resource each
  node has one unit of). `spread=False` packs actors (Ray's DEFAULT), for when they should share
  a node.

The three placement fields are read from the pool config when it has them (the planned
`ActorPoolConfig.accelerator_type / resources / spread`), or given as a `Placement`. Until
`ActorPoolConfig` carries them, `with_placement(pool, placement)` returns a pool config whose
`remote_args()` includes the placement and whose serialised form (`to_dict`) is unchanged, so
the actors' own config parsing is unaffected.

`plan_image_rows` sizes blocks, in-flight tasks and object store for image rows (see
docs/cluster.md, "Block and object store sizing").
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

from engine.config import ConfigError

MiB = 1024 * 1024
RESERVED = {"CPU", "GPU", "memory", "object_store_memory"}  # Ray's own resources: set through num_cpus/num_gpus/memory
# Every stage actor may own an engine with processes of its own (vLLM's engine core and workers),
# which the actor stops in its teardown. By default a Ray worker kills its child processes as it
# exits, *before* that teardown runs: the engine core and multiprocessing's resource tracker die
# by SIGKILL, the engine's shared memory is never unlinked, and the orphaned vLLM worker prints
# resource_tracker KeyError tracebacks. With this off the teardown stops the engine in order;
# Ray still kills whatever is left in the actor's process group once the actor has exited
# (per-worker process groups, on by default in Ray 2.60), and a vLLM engine started in an actor
# also has a watchdog for when the raylet is gone too (engine/ray_session.py: guard_actor_processes).
ACTOR_ENV = {"RAY_kill_child_processes_on_worker_exit": "false"}


@dataclass
class Placement:
    """Where one actor of a pool may run (config: actors.accelerator_type / resources / spread)."""

    accelerator_type: str = ""  # e.g. "H100", "A100", "L4"; "" = any node with the other resources
    resources: dict[str, float] = field(default_factory=dict)  # custom resources per actor, e.g. {"fake_gpu": 1}
    spread: bool = True  # SPREAD actors over nodes (True) or pack them (False)

    def validate(self) -> None:
        for name, amount in self.resources.items():
            if name in RESERVED:
                raise ConfigError(f"actors.resources: {name!r} is Ray's own resource; use actors.num_cpus / num_gpus")
            if name.startswith("accelerator_type:"):
                raise ConfigError("actors.resources: set the accelerator through actors.accelerator_type, not as a resource")
            if not amount > 0:
                raise ConfigError(f"actors.resources.{name}: must be > 0, got {amount!r}")


def placement_of(pool) -> Placement:
    """The placement a pool config asks for: its own fields when it has them, else the defaults."""
    attached = getattr(pool, "_placement", None)
    if attached is not None:
        return attached
    return Placement(accelerator_type=getattr(pool, "accelerator_type", "") or "",
                     resources=dict(getattr(pool, "resources", None) or {}), spread=getattr(pool, "spread", True))


def validate_pool(pool, placement: Placement | None = None) -> None:
    """Bounds, resources and placement of one pool; raises ConfigError."""
    placement = placement or placement_of(pool)
    placement.validate()
    if not 1 <= pool.min_actors <= pool.max_actors:
        raise ConfigError("actors: need 1 <= min_actors <= max_actors")
    if pool.num_cpus < 0 or pool.num_gpus < 0:
        raise ConfigError("actors.num_cpus and actors.num_gpus must be >= 0")
    if placement.accelerator_type and not pool.num_gpus and not placement.resources:
        # An accelerator type without a GPU (or a resource standing for one) reserves nothing on
        # that node: the actor would run on the GPU node's CPU. Almost always a config mistake.
        raise ConfigError("actors.accelerator_type needs actors.num_gpus > 0 (or a custom resource standing for the GPU)")


def placement_kwargs(placement: Placement) -> dict:
    """The Ray remote arguments of one placement (map_batches passes them to each actor)."""
    kwargs: dict = {"scheduling_strategy": "SPREAD" if placement.spread else "DEFAULT"}
    if placement.resources:
        kwargs["resources"] = dict(placement.resources)
    if placement.accelerator_type:
        kwargs["accelerator_type"] = placement.accelerator_type
    return kwargs


def map_batches_kwargs(pool, placement: Placement | None = None) -> dict:
    """Ray Data `map_batches` arguments for one stage: pool bounds, per-actor resources, placement.

    `pool` is an `ActorPoolConfig` (pipelines/generate.py) or anything with its fields.
    """
    import ray.data

    placement = placement or placement_of(pool)
    validate_pool(pool, placement)
    args = {"compute": ray.data.ActorPoolStrategy(min_size=pool.min_actors, max_size=pool.max_actors),
            "num_cpus": pool.num_cpus, "num_gpus": pool.num_gpus or None, "batch_size": pool.batch_size}
    env = dict(ACTOR_ENV)
    if getattr(pool, "omp_threads", 0):
        env["OMP_NUM_THREADS"] = str(pool.omp_threads)
    args["runtime_env"] = {"env_vars": env}
    return args | placement_kwargs(placement)


def with_placement(pool, placement: Placement):
    """A copy of `pool` whose `remote_args()` also places the actors (see the module docstring).

    The copy has the same dataclass fields, so `to_dict(job)` (what the actors parse) is unchanged.
    """
    placement.validate()
    placed = copy.copy(pool)
    placed.__class__ = _placed_class(type(pool))
    object.__setattr__(placed, "_placement", placement)
    return placed


_PLACED: dict[type, type] = {}


def _placed_class(base: type) -> type:
    if base not in _PLACED:
        # A plain subclass (not a new dataclass): dataclasses.fields() and asdict() see only base's fields.
        _PLACED[base] = type(f"Placed{base.__name__}", (base,), {"remote_args": lambda self: map_batches_kwargs(self)})
    return _PLACED[base]


# ---- block and object store sizing for image rows -------------------------------------------


def mean_row_bytes(input_path: str | Path) -> int:
    """Mean bytes per row of canonical shards, from parquet metadata only (no data read).

    Uses the uncompressed column sizes: encoded images (PNG/JPEG bytes) dominate a row and stay
    that size in Arrow memory, so this is what one row costs in a Ray Data block.
    """
    import pyarrow.parquet as pq

    root = Path(input_path)
    files = [root] if root.is_file() else sorted(root.rglob("*.parquet"))
    rows = size = 0
    for f in files:
        meta = pq.ParquetFile(f).metadata
        rows += meta.num_rows
        size += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if not rows:
        raise ConfigError(f"{input_path}: no parquet rows to size")
    return max(1, size // rows)


@dataclass
class ImageRowPlan:
    """Ray Data settings for one image-row stage, and the object store it needs per node."""

    row_bytes: int
    batch_size: int  # rows per actor call (map_batches batch_size)
    rows_per_block: int  # rows per block: the unit of streaming writes and of resume
    block_bytes: int
    tasks_in_flight_per_actor: int  # blocks queued on an actor: one running, the next one prefetched
    target_max_block_size: int  # DataContext: larger blocks are split by Ray Data
    read_op_min_num_blocks: int  # DataContext: enough read blocks for every actor to start at once
    object_store_per_node: int  # bytes: input blocks in flight for the node's actors, their outputs, and headroom
    notes: list[str] = field(default_factory=list)

    def apply(self, ctx=None):
        """Set these values on Ray Data's DataContext (the driver's, which Ray Data propagates)."""
        from ray.data import DataContext

        ctx = ctx or DataContext.get_current()
        ctx.target_max_block_size = self.target_max_block_size
        ctx.read_op_min_num_blocks = self.read_op_min_num_blocks
        ctx.max_tasks_in_flight_per_actor = self.tasks_in_flight_per_actor
        return ctx


def plan_image_rows(row_bytes: int, batch_size: int, rows_per_block: int, max_actors: int, actors_per_node: int = 1,
                    block_budget: int = 64 * MiB, tasks_in_flight_per_actor: int = 2) -> ImageRowPlan:
    """Size blocks and the object store for rows of `row_bytes` (mostly encoded images).

    - A block never exceeds `block_budget` bytes (64 MiB: a tenth of a small node's default object
      store; Ray Data's own default cap is 128 MiB), so `rows_per_block` is lowered for big
      images, but kept >= `batch_size` where the budget allows, so an actor call sees whole batches.
    - `target_max_block_size` is set above one planned block (x1.5 slack, >= 16 MiB), so Ray Data
      does not slice our blocks into pieces smaller than a batch.
    - Each actor holds `tasks_in_flight_per_actor` input blocks (one running, one prefetched);
      outputs (scores) are small but PISM's per-draw records are counted at a block's size to be safe.
      Per node: actors_per_node x in_flight x 2 blocks, doubled as headroom for the read stage and spilling.
    - `read_op_min_num_blocks` >= 2 x max_actors, so a small input still gives every actor work early.
    """
    if row_bytes <= 0 or batch_size <= 0 or rows_per_block <= 0 or max_actors <= 0:
        raise ConfigError("plan_image_rows: sizes must be positive")
    notes = []
    fit = max(1, block_budget // row_bytes)
    rows = min(rows_per_block, fit)
    if rows < rows_per_block:
        notes.append(f"rows_per_block lowered {rows_per_block} -> {rows}: {rows_per_block} rows of {row_bytes} B exceed {block_budget // MiB} MiB")
    if rows < batch_size:
        notes.append(f"a block holds fewer rows ({rows}) than batch_size ({batch_size}): an actor call gets one block's rows")
    block = rows * row_bytes
    store = actors_per_node * tasks_in_flight_per_actor * 2 * block * 2
    return ImageRowPlan(row_bytes=row_bytes, batch_size=batch_size, rows_per_block=rows, block_bytes=block,
                        tasks_in_flight_per_actor=tasks_in_flight_per_actor,
                        target_max_block_size=max(16 * MiB, int(block * 1.5)),
                        read_op_min_num_blocks=max(2 * max_actors, 1), object_store_per_node=store, notes=notes)
