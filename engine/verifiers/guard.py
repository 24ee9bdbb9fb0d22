"""Make every verifier call total and time-bounded.

Inline verifiers (text, numbers, boxes) are linear in their capped input and run in-process; any
exception becomes a recorded reason. Isolated verifiers (math: sympy) run in a pebble process
pool: pebble kills a worker that overruns its deadline even when it is stuck in C code, and
restarts it. We use pebble rather than concurrent.futures because the latter cannot stop a
running task. Workers are spawned (never forked: callers live inside Ray, vLLM and torch
processes with threads) and capped in memory so a runaway bignum raises MemoryError instead of
swapping the machine. Unlike plain multiprocessing spawn, a worker does not re-run the caller's
main script, so a script without an `if __name__ == "__main__":` guard can call verify().
"""
from __future__ import annotations

import atexit
import multiprocessing
import os
import threading
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Callable

from pebble import ProcessExpired, ProcessPool

from engine.verifiers.base import BAD_GROUND_TRUTH, TIMEOUT, WORKER_DIED, GroundTruthError, VerifyResult

DEFAULT_TIMEOUT_S = 10.0
WORKER_MEMORY_BYTES = int(os.environ.get("GRADUS_VERIFIER_WORKER_MEM", str(4 << 30)))
WORKERS = int(os.environ.get("GRADUS_VERIFIER_WORKERS", "2"))
COLLECT_SLACK_S = 60.0  # worker start-up (spawn + imports) and queueing behind in-flight calls
WORKER_NAME = "gradus-verifier"


def run_inline(fn: Callable[..., VerifyResult], output: str, truth: str, params: dict[str, Any]) -> VerifyResult:
    try:
        return fn(output, truth, params)
    except GroundTruthError as exc:
        return VerifyResult.unparsed(f"{BAD_GROUND_TRUTH}: {exc}")
    except (Exception, RecursionError, MemoryError) as exc:  # a verifier bug must not kill a training step
        return VerifyResult.crashed(exc)


def _limit_memory(limit: int) -> None:
    import resource

    if limit > 0:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _isolated_call(fn: Callable[..., VerifyResult], output: str, truth: str, params: dict[str, Any]) -> VerifyResult:
    # Runs in the worker's main thread, so signal-based timeouts inside fn (math-verify) work.
    try:
        return run_inline(fn, output, truth, params)
    except BaseException as exc:  # math-verify's TimeoutException derives from BaseException
        if type(exc).__name__ == "TimeoutException":
            return VerifyResult.unparsed(TIMEOUT)
        raise


class _WorkerProcess(multiprocessing.context.SpawnProcess):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.name = f"{WORKER_NAME}:{self.name}"  # marks it for _skip_main_script


class _WorkerContext(multiprocessing.context.SpawnContext):
    Process = _WorkerProcess


def _skip_main_script(get_preparation_data: Callable[[str], dict]) -> Callable[[str], dict]:
    """Spawn re-imports the caller's main script in every child so that functions defined there
    unpickle. Verifier workers only need importable engine modules; re-running the script would
    execute its top-level code once per worker, and without a __main__ guard the child's own
    verify() call fails ("An attempt has been made to start a new process before ...
    bootstrapping"), so every math call would end as worker_died."""

    def preparation_data(name: str) -> dict:
        data = get_preparation_data(name)
        if name.startswith(WORKER_NAME):
            data.pop("init_main_from_path", None)
            data.pop("init_main_from_name", None)
        return data

    preparation_data.skips_main_script = True  # type: ignore[attr-defined]
    return preparation_data


def _install_skip_main_script() -> None:
    from multiprocessing import spawn

    if not getattr(spawn.get_preparation_data, "skips_main_script", False):
        spawn.get_preparation_data = _skip_main_script(spawn.get_preparation_data)


class IsolatedRunner:
    """One lazily started process pool per process (re-created after a fork)."""

    def __init__(self) -> None:
        self._pool: ProcessPool | None = None
        self._pid = -1
        self._lock = threading.Lock()

    def pool(self) -> ProcessPool:
        with self._lock:
            if self._pool is None or self._pid != os.getpid() or not self._pool.active:
                _install_skip_main_script()
                self._pool = ProcessPool(
                    max_workers=WORKERS,
                    initializer=_limit_memory,
                    initargs=[WORKER_MEMORY_BYTES],
                    context=_WorkerContext(),
                )
                self._pid = os.getpid()
            return self._pool

    def submit(self, fn: Callable[..., VerifyResult], output: str, truth: str, params: dict[str, Any], timeout_s: float):
        return self.pool().schedule(_isolated_call, args=(fn, output, truth, params), timeout=timeout_s)

    def collect(self, future, timeout_s: float) -> VerifyResult:
        # pebble's own deadline starts when a worker picks the task up; the outer wait also bounds
        # a pool that cannot start workers at all (e.g. a spawned worker failing at import).
        try:
            return future.result(timeout=timeout_s + COLLECT_SLACK_S)
        except FutureTimeout:
            if not future.done():  # the pool is wedged: cancel and start a fresh one next time
                future.cancel()
                self.close()
                return VerifyResult.unparsed(f"{WORKER_DIED}: no worker finished the call within {timeout_s + COLLECT_SLACK_S:.0f} s")
            return VerifyResult.unparsed(TIMEOUT)
        except ProcessExpired as exc:
            return VerifyResult.unparsed(f"{WORKER_DIED}: exit code {exc.exitcode}")
        except (Exception, MemoryError) as exc:
            return VerifyResult.crashed(exc)

    def close(self) -> None:
        with self._lock:
            if self._pool is not None and self._pid == os.getpid():
                self._pool.stop()
                try:
                    self._pool.join(timeout=5)
                except TimeoutError:
                    pass
            self._pool = None


RUNNER = IsolatedRunner()
atexit.register(RUNNER.close)
