"""`gradus submit` against a real Ray head started with `ray start --head` on 127.0.0.1: a tiny CMAB
scoring job is submitted through Ray's job API (token auth on, as Ray 2.60 starts it), followed to
success, its output checked, then `gradus jobs status|logs` read it back. Bad configs and
credential-looking env vars are refused before anything reaches the cluster."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.data.sample import SAMPLE_SCHEMA
from engine.data.shards import shard_paths

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[3]
GRADUS = [sys.executable, "-m", "pipelines.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def head(ray_session, tmp_path_factory):
    """A real single-node Ray head, dashboard and job API on loopback only; stopped with its process group.
    (After the session's own Ray: a bare ray.init() would join a `ray start` head.)"""
    port, dash = _free_port(), _free_port()
    # Every agent port free too: defaults (52365, ...) are taken by any other Ray on the machine (the
    # test session's own), and a head whose agent cannot bind never accepts a job.
    agent_ports = [f"--{name}={_free_port()}" for name in ("dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                                                           "runtime-env-agent-port", "metrics-export-port", "ray-client-server-port")]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("RAY_ADDRESS", None)
    log = open(tmp_path_factory.mktemp("head") / "head.log", "w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "ray"), "start", "--head", f"--port={port}", "--dashboard-host=127.0.0.1",
                             f"--dashboard-port={dash}", "--num-cpus=2", "--include-dashboard=true", "--disable-usage-stats", "--block", *agent_ports],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{dash}"
    try:
        from engine import jobs

        deadline = time.time() + 180
        while True:
            try:
                jobs._client(address).list_jobs()
                break
            except Exception:
                if time.time() > deadline or proc.poll() is not None:
                    raise
                time.sleep(2)
        yield address
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # `ray start --block` leaves its children behind; the group does not
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(2)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        log.close()
        current = Path("/tmp/ray/ray_current_cluster")  # what `ray stop` would clear: later ray.init() calls must not join a dead head
        if current.exists() and current.read_text().strip().endswith(f":{port}"):
            current.unlink()


@pytest.fixture(scope="module")
def job_input(warm_corpus, tmp_path_factory):
    rows = pq.read_table(shard_paths(warm_corpus / "test")[0]).to_pylist()[::100][:6]
    src = tmp_path_factory.mktemp("submit-in")
    pq.write_table(pa.Table.from_pylist(rows, schema=SAMPLE_SCHEMA), src / "part-00000.parquet")
    return src, len(rows)


def _gradus(*args, env=None):
    return subprocess.run([*GRADUS, *args], capture_output=True, text=True, timeout=900, cwd=REPO, env=env)


def _user_shell_env() -> dict[str, str]:
    """The environment of a user's shell: this session's ray.init() exports RAY_AUTH_MODE=token, which
    makes any JobSubmissionClient send the token by itself and would hide a submitter that does not."""
    return {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS")}


def _first_json(text: str) -> dict:
    start = text.index("{\n")
    return json.JSONDecoder().raw_decode(text[start:])[0]


def test_submit_follow_status_logs_on_a_loopback_head(head, job_input, warm_model, tmp_path):
    src, rows = job_input
    out = tmp_path / "cmab"
    done = _gradus("submit", "score", "cmab", "--address", head, "--python", sys.executable, "--follow",
                   "--config", str(REPO / "configs" / "cmab" / "tiny.yaml"), f"input={src}", f"output={out}",
                   f"model_path={warm_model}", "heatmaps.per_task=0", "wandb.mode=disabled")
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    record = _first_json(done.stdout)
    assert record["entrypoint"].endswith("pipelines.cli score cmab --config env:GRADUS_JOB_CONFIG")
    assert record["runtime_env"]["env_vars"]["GRADUS_JOB_CONFIG"] == "<resolved config>"  # the config is not echoed
    assert "Authorization" not in done.stdout and "auth_token" not in done.stdout

    scores = pq.read_table(out / "scores.parquet").to_pandas()
    assert len(scores) == rows and scores["error"].isna().all()  # the job ran on the cluster and wrote its output

    status = _gradus("jobs", "status", record["job_id"], "--address", head)
    assert status.returncode == 0 and json.loads(status.stdout)["status"] == "SUCCEEDED"
    logs = _gradus("jobs", "logs", record["job_id"], "--address", head)
    assert logs.returncode == 0 and '"scored"' in logs.stdout  # the job's own summary, printed by its driver


def test_bad_config_and_secrets_are_refused_before_submission(head, job_input, tmp_path):
    from engine import jobs

    before = len(jobs._client(head).list_jobs())
    src, _ = job_input
    missing = _gradus("submit", "score cmab", "--address", head, f"input={src}", f"output={tmp_path}/x")  # no model_path
    assert missing.returncode == 2 and "model_path" in missing.stderr
    env_file = tmp_path / "env.yaml"
    env_file.write_text("env_vars:\n  WANDB_API_KEY: abc123\n")
    secret = _gradus("submit", "score cmab", "--address", head, "--runtime-env", str(env_file), f"input={src}",
                     f"output={tmp_path}/y", "model_path=/models/x")
    assert secret.returncode == 2 and "credentials" in secret.stderr and "abc123" not in secret.stderr
    assert len(jobs._client(head).list_jobs()) == before  # nothing reached the cluster


def test_train_grpo_verl_submission_reaches_verl_on_a_loopback_head(head, warm_model, warm_corpus, tmp_path):
    """`gradus train grpo --backend verl` with the head's address goes through the one submitter: the
    default head (token auth on) accepts it, and the job reaches verl with main_ppo's override set
    (verl.dry_run_in_job: composed and validated by verl in the job, reward loaded, data read; no GPU here)."""
    from engine import jobs
    from rl.grpo.verl_dry_run import MARKER

    out = tmp_path / "grpo"
    done = _gradus("train", "grpo", "--config", str(REPO / "configs" / "grpo" / "qwen2_5_vl_7b_verl.yaml"), "--backend", "verl",
                   f"verl.address={head}", "verl.dry_run_in_job=true", f"verl.python={sys.executable}", f"model_path={warm_model}",
                   f"output_dir={out}", f"data.train={warm_corpus / 'val'}", "data.val=''", "data.max_prompt_length=512",
                   "wandb.mode=disabled", env=_user_shell_env())
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    record = json.loads(done.stdout[done.stdout.rfind("\n{\n") + 1:])  # the CLI's result comes last (verl prints too)
    assert record["launched"] is True and record["entrypoint"].split()[1:3] == ["-m", "rl.grpo.verl_dry_run"]
    assert record["runtime_env"]["excludes"] == jobs.EXCLUDES  # the same code package as `gradus submit`

    job_id = record["submission_id"]
    with open(tmp_path / "job.log", "w") as streamed:
        final = jobs.follow(job_id, head, out=streamed)  # returns when the job has ended
    logs = jobs.logs(job_id, head)
    assert final == 0 and jobs.status(job_id, head)["status"] == "SUCCEEDED", logs[-3000:]
    assert MARKER in logs
    checked = json.loads(logs[logs.index("{\n"):logs.index(MARKER)])
    assert checked["data_files"] == [record["train_file"], record["train_file"]]  # no val split: verl validates on train
    assert checked["reward"]["path"] == "rl/reward.py" and checked["reward"]["reward_kwargs"]["reward_config"] == "configs/reward/vtriune.yaml"
