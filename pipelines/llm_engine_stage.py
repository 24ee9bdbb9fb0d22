"""ray.data.llm's vLLM engine stage, stopped as our own VLLMBackend stops its engine.

ray.data.llm stops a replica's engine when Ray Data ends the replica (`__ray_shutdown__` drops
the UDF, whose `__del__` calls `AsyncLLM.shutdown()`), with vLLM's default 5 s wait for the
engine core: the core is still waiting for its worker to exit, gets SIGKILLed, and its
message-queue segment (/dev/shm/psm_*) is left to multiprocessing's resource tracker, which
warns about a leak. Its stop also closes the engine's client while the engine's output reader
still waits on it, which logs an EngineDeadError traceback. `EngineStageUDF` stops the reader,
then the engine, in order (engine/generation/vllm_backend.stop_engine_core); ray.data.llm's own
stop then finds both stopped.

A module of its own: it imports ray.data.llm's stage (torch, vLLM), which only a processor needs.
"""
from __future__ import annotations

from ray.llm._internal.batch.stages.vllm_engine_stage import vLLMEngineStageUDF

from engine.generation.vllm_backend import stop_engine_core

ENGINE_STAGE = "vLLMEngineStage"  # the engine stage's name in a built processor


class EngineStageUDF(vLLMEngineStageUDF):
    def __del__(self):
        engine = getattr(getattr(self, "llm", None), "engine", None)  # None when the engine never started
        if engine is not None:
            stop_engine(engine)
        super().__del__()


def stop_engine(engine) -> None:
    """Stop an AsyncLLM: its output reader first (it would report the closing core as dead), then the core."""
    from vllm.utils.async_utils import cancel_task_threadsafe

    cancel_task_threadsafe(getattr(engine, "output_handler", None))
    stop_engine_core(engine.engine_core)


def use_ordered_stop(processor) -> None:
    """Run `processor`'s engine stage with `EngineStageUDF`, its resources unchanged."""
    stage = processor.get_stage_by_name(ENGINE_STAGE)
    if stage.fn is not vLLMEngineStageUDF:  # a new ray.data.llm: check the stop still needs this
        raise RuntimeError(f"ray.data.llm's engine stage runs {stage.fn.__qualname__}, not the vLLMEngineStageUDF this wraps")
    # A copy, not `stage.fn = ...`: an assignment re-runs the stage's validator, which has already
    # consumed the placement group config and then asks for a GPU (a CPU job waits forever).
    processor.stages[ENGINE_STAGE] = stage.model_copy(update={"fn": EngineStageUDF})
