"""What a `gradus` job leaves behind when it ends or is stopped: nothing.

The end-to-end tests run the real console script in its own session, on the embedded default
model with real Ray and vLLM engines, and follow every process it starts (session members, and
descendants, which a watchdog in a group of its own still is).
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from engine.ray_session import Stopped, stop_on_signals

GRADUS = str(Path(sys.executable).parent / "gradus")


class Job:
    """A `gradus` command in a session of its own, and every process it has started."""

    def __init__(self, args: list[str], tmp_path: Path):
        self.stderr_path = tmp_path / "stderr.txt"
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen([GRADUS, *args], stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        self.seen: dict[int, psutil.Process] = {}
        self.names: dict[int, str] = {}  # last command line seen
        self.shm: set[str] = set()  # /dev/shm entries a process of the job had mapped (shared memory, semaphores)

    def processes(self) -> list[psutil.Process]:
        """Live processes of the job (zombies are gone), the driver excluded; remembers all seen."""
        found = []
        try:
            found += psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            pass
        for p in psutil.process_iter():
            try:
                if p.pid != self.proc.pid and os.getsid(p.pid) == self.proc.pid:
                    found.append(p)
            except (ProcessLookupError, psutil.NoSuchProcess):
                pass
        for p in found:
            self.seen.setdefault(p.pid, p)
        alive = [p for p in self.seen.values() if _alive(p)]
        for p in alive:  # a spawned process sets its title (VLLM::EngineCore) after it starts
            self.names[p.pid] = _cmdline(p) or self.names.get(p.pid, "")
            self.shm |= _shm_mapped(p.pid)
        return alive

    def shm_left(self) -> list[str]:
        """The job's /dev/shm entries that still exist: nobody unlinked them."""
        return sorted(name for name in self.shm if (SHM / name).exists())

    def wait_for_engine(self, timeout_s: float) -> None:
        """Until a vLLM engine core and its worker run (or fail the test)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"gradus exited early ({self.proc.returncode}):\n{self.stderr()[-3000:]}"
            names = " ".join(self.names[p.pid] for p in self.processes())
            if "EngineCore" in names and "VLLM::Worker" in names:
                return
            time.sleep(1)
        raise AssertionError(f"no vLLM engine after {timeout_s} s")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def kill_leftovers(self) -> None:
        """Whatever a failed test left running: the driver, then every process of the job."""
        if self.proc.poll() is None:
            self.proc.kill()
        for p in self.processes():
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass


SHM = Path("/dev/shm")


def _shm_mapped(pid: int) -> set[str]:
    """Names of the /dev/shm entries `pid` maps and has not seen unlinked (Ray's object store
    file is unlinked at once and shows as "(deleted)"). Only the job's own: jobs beside it
    create and remove entries of their own."""
    try:
        with open(f"/proc/{pid}/maps") as maps:
            paths = {line.split(None, 5)[5].strip() for line in maps if f" {SHM}/" in line}
    except (OSError, IndexError):
        return set()
    return {path[len(f"{SHM}/"):] for path in paths if not path.endswith("(deleted)")}


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_gone(p: psutil.Process, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while _alive(p) and time.monotonic() < deadline:
        time.sleep(0.2)
    return not _alive(p)


def _cmdline(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline()) or p.name()
    except psutil.Error:
        return ""


def _described(procs) -> list[str]:
    return [f"{p.pid} {_cmdline(p)[:80]}" for p in procs]


def test_a_stop_signal_raises_stopped_and_ignored_signals_stay_ignored():
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    term = signal.getsignal(signal.SIGTERM)
    seen = []
    try:
        with pytest.raises(Stopped) as stop:
            with stop_on_signals(on_signal=seen.append):
                os.kill(os.getpid(), signal.SIGHUP)  # ignored before: stays ignored
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # the handler runs at the next bytecode
        assert stop.value.code == 128 + signal.SIGTERM and stop.value.signum == signal.SIGTERM
        assert seen == [signal.SIGTERM]  # the caller's stop step ran first, once
        assert signal.getsignal(signal.SIGTERM) == term and signal.getsignal(signal.SIGHUP) == signal.SIG_IGN  # put back
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_the_watchdog_stops_a_killed_process_group(tmp_path):
    """A process killed with SIGKILL runs no cleanup; its group (an engine's processes in a Ray
    actor) is stopped by the watchdog it started."""
    script = textwrap.dedent("""
        import subprocess, sys, time
        from engine.ray_session import start_group_watchdog
        child = subprocess.Popen(["sleep", "600"])
        start_group_watchdog(grace_s=5)
        print(child.pid, flush=True)
        time.sleep(600)
    """)
    leader = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True)
    child = psutil.Process(int(leader.stdout.readline()))
    try:
        time.sleep(1)  # the watchdog is up and waiting
        leader.kill()
        leader.wait(30)
        assert _wait_gone(child, 60)  # generous: stopping takes well under a second
    finally:
        if _alive(child):
            child.kill()


@pytest.mark.slow
def test_sigterm_stops_the_job_and_everything_it_started(warm_model, warm_corpus, tmp_path):
    """`kill PID` of a running `gradus score pism`: it shuts its Ray cluster and vLLM engine down
    in order and only then exits, with status 128 + SIGTERM."""
    job = Job(["score", "pism", f"input={warm_corpus / 'test'}", f"output={tmp_path / 'out'}", "rows_per_block=16",
               f"generation.model_path={warm_model}"], tmp_path)
    try:
        job.wait_for_engine(timeout_s=900)
        deadline = time.monotonic() + 600
        while not list((tmp_path / "out" / "parts").glob("*.parquet")):  # the engine is scoring: stop it mid-job
            assert job.proc.poll() is None and time.monotonic() < deadline, job.stderr()[-3000:]
            job.processes()
            time.sleep(1)
        started = job.processes()
        job.proc.send_signal(signal.SIGTERM)
        code = job.proc.wait(timeout=300)
        left = job.processes()
        err = job.stderr()
        assert code == 128 + signal.SIGTERM, err[-3000:]
        assert not left, f"still running after gradus exited: {_described(left)}"
        assert len(started) >= 5  # Ray's processes, the actor, the engine core and its worker were all followed
        assert "stopped by SIGTERM" in err
        assert "resource_tracker" not in err and "SIGTERM received" not in err, err[-3000:]  # engine stopped in order; no crash dump
    finally:
        job.kill_leftovers()


@pytest.mark.slow
@pytest.mark.parametrize("runner", ["actor", "ray_data_llm"])
def test_a_finished_vllm_job_prints_no_traceback_and_leaves_nothing(warm_model, warm_corpus, tmp_path, runner):
    """A normal `gradus generate` on vLLM, on either runner: the engine is shut down while its
    processes and multiprocessing's resource tracker still live (no resource_tracker warnings or
    KeyError tracebacks, in gradus's stderr or in the engine worker's own log), every shared-memory
    segment the engine made is unlinked by its owner, and gradus exits only after its processes."""
    job = Job(["generate", f"input={warm_corpus / 'test'}", f"output={tmp_path / 'out'}", "limit=4",
               f"generation.model_path={warm_model}", f"runner={runner}"], tmp_path)
    try:
        while job.proc.poll() is None:
            job.processes()
            time.sleep(1)
        left = job.processes()
        deadline = time.monotonic() + 120
        while job.processes() and time.monotonic() < deadline:  # let stragglers finish writing their logs
            time.sleep(1)
        err = job.stderr()
        assert job.proc.returncode == 0, err[-3000:]
        assert any("EngineCore" in name for name in job.names.values())  # a real engine ran
        sessions = set(re.findall(r"/tmp/ray/session_[^/\s]+", err))
        assert len(sessions) == 1, sessions
        logs = sorted(Path(sessions.pop(), "logs").glob("worker-*"))
        assert logs
        for text in [err] + [log.read_text(errors="replace") for log in logs]:
            assert "resource_tracker" not in text and "Traceback" not in text, text[-3000:]
        assert not left, f"still running after gradus exited: {_described(left)}"
        assert any(name.startswith("psm_") for name in job.shm)  # the engine's message queues were seen
        assert not job.shm_left(), f"left in {SHM}: {job.shm_left()}"
    finally:
        job.kill_leftovers()
