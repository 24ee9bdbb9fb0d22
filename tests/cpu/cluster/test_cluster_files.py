"""The cluster launch files parse and hold what docs/cluster.md relies on: the launcher YAML passes
Ray's own schema, dashboards stay on loopback, GPU groups autoscale between bounds, the KubeRay
manifests have the fields the operator needs, and the entrypoints name configs that exist."""
import copy
import re
import shlex
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
CLUSTER = REPO / "cluster"


def _load(name: str) -> dict:
    return yaml.safe_load((CLUSTER / name).read_text())


def test_launcher_yaml_passes_rays_schema_and_keeps_the_dashboard_on_loopback():
    from ray.autoscaler._private.util import prepare_config, validate_config

    cfg = _load("ray-cluster.yaml")
    validate_config(prepare_config(copy.deepcopy(cfg)))  # Ray's ray-schema.json, defaults filled in as `ray up` does
    head = " ".join(cfg["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head and "--head" in head and "--num-cpus=0" in head
    gpu = cfg["available_node_types"]["gpu_h100"]
    assert 0 == gpu["min_workers"] < gpu["max_workers"] == cfg["max_workers"] == 8
    assert gpu["resources"]["GPU"] == 8 and gpu["resources"]["accelerator_type:H100"] == 1
    assert cfg["head_node_type"] == "head" and cfg["available_node_types"]["head"]["resources"] == {"CPU": 0}
    assert cfg["docker"]["image"] == "rayproject/ray:2.60.0-py311-gpu"  # the Ray and Python setup.py pins
    assert any("gradus[gpu]" in c for c in cfg["setup_commands"])  # setup.py's pinned set


def _check_ray_cluster_spec(spec: dict) -> None:
    assert spec["rayVersion"] == "2.60.0" and spec["enableInTreeAutoscaling"] is True
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["dashboard-host"] == "127.0.0.1" and head["rayStartParams"]["num-cpus"] == "0"
    assert head["template"]["spec"]["containers"][0]["name"] == "ray-head"
    (group,) = spec["workerGroupSpecs"]
    assert 0 == group["minReplicas"] <= group["replicas"] <= group["maxReplicas"] == 8
    worker = group["template"]["spec"]["containers"][0]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert yaml.safe_load(yaml.safe_load(group["rayStartParams"]["resources"])) == {"accelerator_type:H100": 1}
    for pod in (head["template"]["spec"], group["template"]["spec"]):
        mounts = {m["name"]: m["mountPath"] for c in pod["containers"] for m in c.get("volumeMounts", [])}
        assert mounts["cluster-storage"] == "/mnt/cluster_storage"  # where configs/*/qwen2_5_vl_7b_*.yaml read and write
        assert {v["name"] for v in pod["volumes"]} >= set(mounts)


def test_kuberay_raycluster():
    doc = _load("kuberay/raycluster.yaml")
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayCluster" and doc["metadata"]["name"]
    _check_ray_cluster_spec(doc["spec"])


def test_kuberay_rayjob_scores_with_configs_that_exist():
    doc = _load("kuberay/rayjob-score.yaml")
    spec = doc["spec"]
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayJob"
    assert spec["submissionMode"] == "SidecarMode"  # the submitter reaches the job API on the head's loopback
    assert spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["restartPolicy"] == "Never"  # SidecarMode needs it
    assert spec["shutdownAfterJobFinishes"] is True and spec["backoffLimit"] >= 1
    _check_ray_cluster_spec(spec["rayClusterSpec"])
    configs = re.findall(r"--config ([^\s\"]+)", spec["entrypoint"])
    assert configs and all((REPO / c).exists() for c in configs)
    assert "gradus score pism" in spec["entrypoint"] and "gradus score cmab" in spec["entrypoint"]
    assert yaml.safe_load(spec["runtimeEnvYAML"])["env_vars"]["WANDB_MODE"] == "offline"
    shlex.split(spec["entrypoint"])  # one well-formed shell command


def test_runtime_env_template_and_dockerfile():
    env = _load("runtime_env.yaml")
    from engine.jobs import EXCLUDES

    assert env["working_dir"] == "." and env["excludes"] == EXCLUDES and env["env_vars"]["WANDB_MODE"] == "offline"  # the submitter's list
    assert not any(re.search(r"KEY|TOKEN|SECRET|PASSWORD", k, re.I) for k in env["env_vars"])  # secrets never go here
    docker = (CLUSTER / "Dockerfile").read_text()
    assert "FROM rayproject/ray:2.60.0-py311-gpu" in docker and '.[gpu]' in docker and "install_hooks" in docker
