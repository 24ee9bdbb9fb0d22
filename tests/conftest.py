"""Session-scoped fixtures: one Ray session, one embedded default model, built once per run.

Engines are expensive here (Ray ~9 s, vLLM ~35 s, torch imports ~8 s per process), so every
real-engine test shares these instead of starting its own.
"""
from __future__ import annotations

import faulthandler
import os
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("WANDB_MODE", "offline")
EXIT_GRACE_S = 120  # after the summary, how long the interpreter may take to exit before the run is ended for it


def pytest_sessionfinish(session, exitstatus):
    session.config._gradus_exitstatus = int(exitstatus)


def pytest_unconfigure(config):
    """A finished run must end. If something a test started (a non-daemon thread, a child process
    holding the interpreter at exit) keeps it alive past the summary, print what it is and exit with
    the run's own status, instead of hanging until CI's hard limit with the verdict unread."""
    status = getattr(config, "_gradus_exitstatus", None)
    if status is None:
        return

    def stuck() -> None:
        sys.stderr.write(f"\nconftest: pytest finished (exit {status}) but the process did not exit within {EXIT_GRACE_S}s; "
                         f"live threads: {[t.name for t in threading.enumerate()]}\n")
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        subprocess.run(["ps", "-o", "pid,ppid,etime,args", "--ppid", str(os.getpid())], stdout=sys.stderr, check=False)
        sys.stderr.flush()
        os._exit(status or 1)

    timer = threading.Timer(EXIT_GRACE_S, stuck)
    timer.daemon = True
    timer.start()


@pytest.fixture(scope="session")
def ray_session():
    import ray

    from engine.ray_session import init_ray

    # address="local": a fresh cluster even when a `ray start` head (a loopback or simulated-cluster
    # test's) left /tmp/ray/ray_current_cluster behind, which a bare ray.init() would join
    init_ray(num_cpus=2, log_to_driver=False, address="local")
    yield ray
    # bounded: after a fork of this process left Ray's gRPC clients dead, shutdown can wait forever on
    # them; the cluster's processes then end with this process (the exit guard below bounds that too)
    if not _bounded(lambda: ray.shutdown() or True, 120)[0]:
        warnings.warn("ray.shutdown() of the shared session did not return within 120 s")


def _bounded(call, timeout_s: float):
    """(finished, value) of `call()` run in a daemon thread for at most `timeout_s`."""
    out: dict = {}
    worker = threading.Thread(target=lambda: out.setdefault("value", call()), daemon=True)
    worker.start()
    worker.join(timeout_s)
    return "value" in out, out.get("value")


def _cluster_cpus(ray, nodeid: str) -> tuple[float, float]:
    """(total, free) CPUs of the shared session. Ray's state accessor keeps one gRPC channel to the GCS
    for the life of the process; a test that forks this process (verl's dataset filter does, through a
    process pool) can leave that channel dead, and every later `ray.cluster_resources()` (Ray Data
    calls it to size a job) then blocks forever. A dead channel is replaced, and said so, instead."""
    from ray._private import state

    def resources():
        return ray.cluster_resources().get("CPU", 0), ray.available_resources().get("CPU", 0)

    done, value = _bounded(resources, 20)
    if not done:
        warnings.warn(f"Ray's GCS state channel stopped answering around {nodeid} (a fork of the test process?); "
                      "reconnected it")
        state.state._global_state_accessor = None
        done, value = _bounded(resources, 20)
        if not done:
            pytest.fail(f"{nodeid}: the shared Ray session's GCS does not answer", pytrace=False)
    return value


@pytest.fixture(autouse=True)
def ray_session_left_whole(request):
    """Tests share one 2-CPU Ray session: before a test that uses it, the session answers; after it, a
    test that leaves an actor or placement group holding CPUs (so every later Ray Data job would wait
    forever for an actor slot) fails, naming what holds them."""
    uses_ray = "ray_session" in request.fixturenames
    if uses_ray:
        import ray

        if ray.is_initialized():
            _cluster_cpus(ray, request.node.nodeid)
    yield
    if not uses_ray:
        return
    import ray

    if not ray.is_initialized():
        return
    deadline = time.monotonic() + 30  # actors a finished job released are reaped asynchronously
    total, free = _cluster_cpus(ray, request.node.nodeid)
    while free < total and time.monotonic() < deadline:
        time.sleep(0.5)
        total, free = _cluster_cpus(ray, request.node.nodeid)
    if free < total:
        from ray.util.state import list_actors, list_placement_groups

        alive = [f"{a.class_name} ({a.actor_id[:8]})" for a in list_actors(filters=[("state", "=", "ALIVE")])]
        groups = [g.placement_group_id[:8] for g in list_placement_groups(filters=[("state", "=", "CREATED")])]
        pytest.fail(f"{request.node.nodeid} left {total - free:g} of {total:g} CPUs of the shared Ray session held: "
                    f"alive actors {alive}, placement groups {groups}", pytrace=False)


@pytest.fixture(scope="session")
def warmstart_config():
    from engine.config import load_config
    from rl.warmstart import WarmstartConfig

    return load_config(WarmstartConfig, REPO / "configs" / "warmstart" / "tiny.yaml")


@pytest.fixture(scope="session")
def warm_model(ray_session, warmstart_config) -> Path:
    """The real embedded default: synthetic corpus -> tiny Qwen2.5-VL -> Ray Train SFT (cached)."""
    from rl.warmstart import ensure_warmstart

    return ensure_warmstart(warmstart_config)


@pytest.fixture(scope="session")
def warm_corpus(warm_model, warmstart_config) -> Path:
    from engine.paths import cache_root
    from rl.warmstart import ensure_corpus

    return ensure_corpus(warmstart_config.synth, cache_root(warmstart_config.cache_dir))


@pytest.fixture(scope="session")
def tiny_random_model(tmp_path_factory) -> Path:
    """A randomly initialised tiny model (seconds to build) for tests that need any real model."""
    from engine.model.tiny import TinyModelConfig, build_tiny_model

    texts = ["How many shapes are there? Put the final answer in \\boxed{}.", "\\boxed{3}", "What color is the circle?"] * 20
    return build_tiny_model(TinyModelConfig(vocab_size=400), texts, tmp_path_factory.mktemp("tiny") / "model")
