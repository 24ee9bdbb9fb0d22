"""Ray jobs: the one submitter (`submit_job`: token, secret refusal, retries, gradus's working dir)
and a submitted job's status, logs, stop and follow.

The working dir is this checkout minus environments, outputs and VCS data. Secrets never go into
the runtime_env: env vars whose names look like credentials are refused (they belong in the
cluster's own environment). Every submission goes through `submit_job`: `gradus submit`
(pipelines/submit.py) and the verl launcher (rl/grpo/verl_launch.py).
"""
from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path
from typing import Any

from engine.config import ConfigError
from engine.paths import REPO_ROOT

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
# data and weights reach a job through storage every node sees, never inside the code package
EXCLUDES = [".git", ".venv", "outputs", "runs", "wandb", "**/__pycache__", "*.egg-info", ".pytest_cache", ".ruff_cache", ".hypothesis",
            "benchmarks/results", "*.parquet", "*.safetensors"]
# a credential word ending a name part (WANDB_API_KEY, HF_TOKEN, AWS_SECRET_ACCESS_KEY), not any substring (TOKENIZERS_PARALLELISM)
SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)S?(_|$)", re.IGNORECASE)
TERMINAL = {"SUCCEEDED": 0, "FAILED": 1, "STOPPED": 1}


def address(given: str | None) -> str:
    """--address, else RAY_ADDRESS when it is a dashboard URL, else the loopback dashboard."""
    if given:
        return given
    env = os.environ.get("RAY_ADDRESS", "")
    return env if env.startswith("http") else DEFAULT_ADDRESS


def runtime_env(env_vars: dict[str, str], extra: dict[str, Any] | None = None, working_dir: Path = REPO_ROOT) -> dict[str, Any]:
    """A job's runtime_env: gradus's code as working_dir (EXCLUDES left out), `env_vars`, then the
    caller's additions merged on top (their env_vars into ours, other keys replacing ours).
    Credential-looking env var names are refused, wherever they came from."""
    extra = dict(extra or {})
    merged = {**env_vars, **extra.pop("env_vars", {})}
    secrets = sorted(k for k in merged if SECRET_NAME.search(k))
    if secrets:
        raise ConfigError(f"runtime_env env_vars {secrets} look like credentials: set them in the cluster's environment, "
                          "not in a job's runtime_env (it is stored by the cluster and shown in its dashboard)")
    env = {"working_dir": str(working_dir), "excludes": list(EXCLUDES), "env_vars": merged}
    env.update(extra)
    return env


def submit_job(command: str, runtime_env: dict[str, Any], *, addr: str | None = None, job_id: str | None = None,
               metadata: dict[str, str] | None = None) -> str:
    """Submit `command` as a Ray job with the cluster's auth token, retrying while a fresh head's agent
    is not up yet; returns the submission id. Every gradus submission goes through here."""
    client = _client(addr)
    return _with_retry(lambda: client.submit_job(entrypoint=command, runtime_env=runtime_env, submission_id=job_id,
                                                 metadata=metadata))


def _with_retry(call, wait_s: float = 120.0):
    """A head that just started answers before its node agent does ("No available agent to submit
    job"); retry that, and only that, for a while instead of failing the submission."""
    import time

    deadline = time.time() + wait_s
    while True:
        try:
            return call()
        except RuntimeError as exc:
            if "No available agent" not in str(exc) or time.time() > deadline:
                raise
            time.sleep(3)


def _client(addr: str | None):
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(address(addr), headers=_auth_headers())


def _auth_headers() -> dict[str, str] | None:
    """Ray 2.60 clusters require a token on their job API by default (`ray start` writes it to
    ~/.ray/auth_token). Send it when one is at hand (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or the
    default file), so submissions work without weakening the cluster's auth. Never printed."""
    token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if not token:
        path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH", Path.home() / ".ray" / "auth_token"))
        token = path.read_text().strip() if path.exists() else ""
    return {"Authorization": f"Bearer {token}"} if token else None


def status(job_id: str, addr: str | None = None) -> dict[str, Any]:
    info = _client(addr).get_job_info(job_id)
    return {"job_id": job_id, "status": str(info.status.value if hasattr(info.status, "value") else info.status),
            "message": info.message, "entrypoint": info.entrypoint, "start_time": info.start_time, "end_time": info.end_time}


def logs(job_id: str, addr: str | None = None) -> str:
    return _client(addr).get_job_logs(job_id)


def stop(job_id: str, addr: str | None = None) -> dict[str, Any]:
    return {"job_id": job_id, "stop_requested": bool(_client(addr).stop_job(job_id))}


def follow(job_id: str, addr: str | None = None, out=sys.stdout) -> int:
    """Stream the job's logs until it ends; returns 0 when it succeeded, 1 otherwise."""
    client = _client(addr)

    async def tail() -> None:
        async for chunk in client.tail_job_logs(job_id):
            out.write(chunk)
            out.flush()

    asyncio.run(tail())
    final = status(job_id, addr)["status"]
    return TERMINAL.get(final, 1)
