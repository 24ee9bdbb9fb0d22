"""One way to start (or join) Ray, with gradus's defaults, and to stop everything it started.

A local cluster (no RAY_ADDRESS) is a tree of processes under this one: Ray's own (GCS, raylet,
dashboard), its workers (each in a process group of its own) and what they start, such as a vLLM
engine core and its workers. `shutdown_ray` stops that tree in order and returns only when
nothing of it is left, so a job that ends, or is stopped by a signal, leaves no engine holding
memory. `stop_on_signals` turns SIGTERM / SIGINT / SIGHUP into an exception (`Stopped`), so the
caller's cleanup runs instead of the process dying where it stands. In an actor,
`guard_actor_processes` makes the processes it starts die with it even when no teardown runs.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from typing import Callable

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_cluster_roots: list = []  # psutil.Process of each process ray.init started here (empty when joined)
_guarded: list = []  # this process's pid once a watchdog guards its process group


class Stopped(SystemExit):
    """A stop signal arrived; exits with 128 + the signal number, the shell's convention."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum


def init_ray(num_cpus: int | None = None, **kwargs) -> None:
    """Join the cluster named by RAY_ADDRESS, else start a new local one; no-op if already connected.

    The dashboard stays on (Ray Train's state checks need its API) but binds to 127.0.0.1 unless
    the caller asks otherwise: a job API open to the network runs anyone's code.
    """
    import psutil
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        _cluster_roots.clear()  # a joined cluster is not ours to stop
        with _keeping_signal_handlers():
            ray.init(**kwargs)
        return
    kwargs.setdefault("dashboard_host", "127.0.0.1")
    # address="local": a new cluster, never whatever `ray start` head /tmp/ray/ray_current_cluster
    # names (a bare ray.init() joins it, or fails on num_cpus when it is gone); clusters are named
    # explicitly with RAY_ADDRESS.
    kwargs.setdefault("address", "local")
    before = {p.pid for p in psutil.Process().children()}
    with _keeping_signal_handlers():
        ray.init(num_cpus=num_cpus, **kwargs)
    _cluster_roots[:] = [p for p in psutil.Process().children() if p.pid not in before]


@contextmanager
def _keeping_signal_handlers():
    """ray.init installs its own SIGTERM handler (Python's, and a C++ one that dumps a stack and can
    abort the process); a handler the caller had set is put back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in before.items():
            if callable(handler) and handler is not signal.default_int_handler:
                signal.signal(sig, handler)


@contextmanager
def stop_on_signals(on_signal: Callable[[int], None] | None = None):
    """Within the block, SIGTERM / SIGINT / SIGHUP raise `Stopped` in the main thread, after
    `on_signal(signum)` has run; further stop signals are ignored from then on.

    Python's default for SIGTERM and SIGHUP ends the process at once, skipping every `finally`.
    Signals ignored when the block starts (nohup, a background job's SIGINT) stay ignored. Outside
    the main thread (no signal handlers there) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {s: signal.getsignal(s) for s in STOP_SIGNALS}

    def raise_stopped(signum, frame):
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        if on_signal is not None:
            on_signal(signum)
        raise Stopped(signum)

    for sig, handler in before.items():
        if handler is not signal.SIG_IGN:
            signal.signal(sig, raise_stopped)
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def shutdown_ray(interrupted: bool = False, grace_s: float = 30.0) -> None:
    """Stop what `init_ray` started and wait until it is gone; no-op if Ray is not connected.

    A joined cluster is only disconnected from (the cluster then ends this job's actors). A local
    cluster is stopped in order: first the workers that started processes of their own (an actor
    owning a vLLM engine) exit, each through its own teardown, which shuts its engine down and
    releases the engine's shared memory; then `ray.shutdown()` stops Ray's processes; whatever
    is left gets SIGTERM and, `grace_s` later, SIGKILL. At the end of a job those workers are
    already exiting and are waited for (up to `grace_s`); when `interrupted` (a stop signal) they
    get SIGTERM first, which ends the batch they are running. When the signal reached Ray's own
    processes too (sent to the whole process group), workers cannot exit through Ray any more:
    the wait ends as soon as Ray's processes are gone.
    """
    ray = sys.modules.get("ray")  # never imported: nothing was started
    if ray is None:
        return
    roots, tree = list(_cluster_roots), _cluster_tree()
    _cluster_roots.clear()
    owners = [p for p in tree if p not in roots and _owns_processes(p)]
    with _stop_signals_ignored():  # bounded by grace_s; a second Ctrl-C must not leave half a cluster
        if interrupted:
            _send(owners, signal.SIGTERM)
        _wait([q for p in owners for q in _with_descendants(p)], grace_s, while_alive=roots)
        if ray.is_initialized():
            ray.shutdown()
        _terminate(tree, grace_s)


def stop_engines(grace_s: float = 30.0) -> None:
    """Ask what the local cluster's workers started to stop, and wait for it, up to `grace_s`:
    each process a worker started itself gets SIGTERM and stops its own children in order (a
    vLLM engine core stops its workers; each releases its shared memory).

    The first step when a job is stopped: the exception that ends the driver's loop over results
    makes Ray Data kill its actors outright (ray.kill), and Ray then kills each actor's process
    group, engine included, with SIGKILL. Processes that ignore SIGTERM (multiprocessing's
    resource tracker, which exits with its owner) are not waited for.
    """
    owners = [p for p in _cluster_tree() if p not in _cluster_roots and _owns_processes(p)]
    below = [q for p in owners for q in _group_below(p)]
    _send([q for q in below if _parent_pid(q) in {p.pid for p in owners}], signal.SIGTERM)
    _wait([q for q in below if not _ignores(q, signal.SIGTERM)], grace_s)


def _parent_pid(p) -> int | None:
    import psutil

    try:
        return p.ppid()
    except psutil.NoSuchProcess:
        return None


def _group_below(p) -> list:
    """`p`'s descendants in `p`'s process group (not a watchdog, which has a group of its own)."""
    import psutil

    out = []
    for q in _with_descendants(p)[1:]:
        try:
            if os.getpgid(q.pid) == p.pid:
                out.append(q)
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
    return out


def _ignores(p, sig: int) -> bool:
    """Whether `p` ignores `sig` (Linux: the SigIgn mask in /proc/PID/status)."""
    try:
        with open(f"/proc/{p.pid}/status") as status:
            mask = next(int(line.split()[1], 16) for line in status if line.startswith("SigIgn:"))
    except (OSError, StopIteration):
        return False
    return bool(mask >> (sig - 1) & 1)


@contextmanager
def _stop_signals_ignored():
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {s: signal.signal(s, signal.SIG_IGN) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def _cluster_tree() -> list:
    """The local cluster's processes, Ray's own first (roots and everything below them)."""
    seen: dict = {}
    for root in _cluster_roots:
        for p in _with_descendants(root):
            seen.setdefault(p.pid, p)
    return list(seen.values())


def _with_descendants(p) -> list:
    import psutil

    try:
        return [p, *p.children(recursive=True)] if p.is_running() else []
    except psutil.NoSuchProcess:
        return []


def _owns_processes(p) -> bool:
    """A Ray worker (leader of its own process group, as Ray places each) with children of its own."""
    import psutil

    try:
        return os.getpgid(p.pid) == p.pid and bool(p.children())
    except (psutil.NoSuchProcess, ProcessLookupError):
        return False


def _alive(p) -> bool:
    import psutil

    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait(procs: list, timeout_s: float, while_alive: list = ()) -> list:
    """Those of `procs` still alive after waiting up to `timeout_s` (a zombie counts as gone), or
    as soon as one of `while_alive` is gone."""
    deadline = time.monotonic() + timeout_s
    alive = [p for p in procs if _alive(p)]
    while alive and time.monotonic() < deadline and all(_alive(p) for p in while_alive):
        time.sleep(0.2)
        alive = [p for p in alive if _alive(p)]
    return alive


def _send(procs: list, sig: int) -> None:
    import psutil

    for p in procs:
        try:
            p.send_signal(sig)
        except psutil.NoSuchProcess:
            pass


def _terminate(procs: list, grace_s: float) -> None:
    """SIGTERM those of `procs` still alive; SIGKILL what is left after `grace_s`."""
    alive = [p for p in procs if _alive(p)]
    _send(alive, signal.SIGTERM)
    alive = _wait(alive, grace_s)
    if alive:
        print(f"gradus: killing {len(alive)} process(es) that outlived SIGTERM: "
              f"{', '.join(f'{p.pid} ({_name(p)})' for p in alive)}", file=sys.stderr)
        _send(alive, signal.SIGKILL)
        _wait(alive, 10.0)


def _name(p) -> str:
    import psutil

    try:
        return p.name()
    except psutil.NoSuchProcess:
        return "gone"


# Run by a watchdog in a process group of its own, with `python -S` (no site-packages, so no
# start-up hooks): wait for the guarded process to end (its pidfd turns readable), then stop its
# group: SIGTERM (vLLM's engine processes stop cleanly on it), SIGKILL after the grace period.
_WATCHDOG = """
import os, select, signal, sys, time
pid, grace = int(sys.argv[1]), float(sys.argv[2])
try:
    select.select([os.pidfd_open(pid)], [], [])
except ProcessLookupError:
    pass
def alive():
    try:
        os.killpg(pid, 0)
        return True
    except ProcessLookupError:
        return False
if alive():
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    if alive():
        os.killpg(pid, signal.SIGKILL)
"""


def guard_actor_processes(grace_s: float = 30.0) -> None:
    """In a Ray actor: make what it starts (an engine's processes) die with it, however it dies.

    Ray stops an exiting worker's process group, but only while its raylet lives: a `kill -9` of a
    local job's process group takes the raylet too, and the actor then exits without a teardown.
    A watchdog outside the group notices the actor's death and stops the group. Elsewhere (a
    driver, a script, a test) this does nothing: there the process group is the caller's.
    """
    ray = sys.modules.get("ray")
    if _guarded or ray is None or not ray.is_initialized() or ray.get_runtime_context().get_actor_id() is None:
        return
    if os.getpgid(0) != os.getpid():  # Ray places each worker in a group of its own; without that there is nothing to guard
        return
    start_group_watchdog(grace_s)
    _guarded.append(os.getpid())


def start_group_watchdog(grace_s: float = 30.0) -> subprocess.Popen:
    """Start a watchdog (in a process group of its own) that stops this process's group once this
    process has ended: SIGTERM, then SIGKILL after `grace_s`. This process must lead its group."""
    return subprocess.Popen([sys.executable, "-S", "-c", _WATCHDOG, str(os.getpid()), str(grace_s)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, process_group=0)
