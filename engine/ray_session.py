"""One way to start (or join) Ray, with gradus's defaults."""
from __future__ import annotations

import os


def init_ray(num_cpus: int | None = None, **kwargs) -> None:
    """Join the cluster named by RAY_ADDRESS, else start a new local one; no-op if already connected.

    The dashboard stays on (Ray Train's state checks need its API) but binds to 127.0.0.1 unless
    the caller asks otherwise: a job API open to the network runs anyone's code.
    """
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(**kwargs)
        return
    kwargs.setdefault("dashboard_host", "127.0.0.1")
    # address="local": a new cluster, never whatever `ray start` head /tmp/ray/ray_current_cluster
    # names (a bare ray.init() joins it, or fails on num_cpus when it is gone); clusters are named
    # explicitly with RAY_ADDRESS.
    kwargs.setdefault("address", "local")
    ray.init(num_cpus=num_cpus, **kwargs)
