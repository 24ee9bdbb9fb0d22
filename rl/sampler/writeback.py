"""The posterior after training -> `sampler_posterior.parquet`, and into the store as `pass_rate@<tag>`.

What is written is the posterior's evidence per sample: pass_rate = passes / (passes + fails) and
n = passes + fails (rounded), where passes and fails are the (discounted) verdicts the sampler
holds: the earlier run's it started from plus this run's. A next run that reads this namespace as
`sampler.prior.pass_rate` (with the same scorers and calibration) starts from this posterior.
Samples with no verdict are left out (the store shows them unscored). The file also keeps alpha,
beta, the posterior and prior means, and the run's provenance.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from engine.publish import publish_file
from engine.shaping.store import MANIFEST, ScoreSource, build_store, read_manifest
from rl.sampler.core import OnlineDifficultySampler

POSTERIOR = "sampler_posterior.parquet"
SCHEMA = pa.schema([("id", pa.string()), ("pass_rate", pa.float64()), ("n", pa.int64()), ("passes", pa.float64()),
                    ("fails", pa.float64()), ("verdicts", pa.int64()), ("alpha", pa.float64()), ("beta", pa.float64()),
                    ("mean", pa.float64()), ("prior_mean", pa.float64()), ("domain", pa.string()), ("model_id", pa.string()),
                    ("config_hash", pa.string()), ("seed", pa.int64()), ("gradus_version", pa.string())])


def posterior_rows(sampler: OnlineDifficultySampler, provenance: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for r in sampler.posterior():
        n = round(r["passes"] + r["fails"])
        if n < 1:
            continue
        rows.append({**r, "pass_rate": r["passes"] / (r["passes"] + r["fails"]), "n": n,
                     **{k: provenance.get(k) for k in ("model_id", "config_hash", "seed", "gradus_version")}})
    return rows


def write_posterior(sampler: OnlineDifficultySampler, path: Path, provenance: dict[str, Any]) -> Path:
    rows = posterior_rows(sampler, provenance)
    return publish_file(Path(path), lambda tmp: pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), tmp))


def write_back(store: str, tag: str, posterior_file: Path) -> dict[str, Any]:
    """Join the posterior into `store` as pass_rate@<tag>, replacing that namespace's earlier run
    (its verdicts are part of this posterior when the run read it as its prior)."""
    ns = f"pass_rate@{tag}"
    present = read_manifest(store)["sources"] if (Path(store) / MANIFEST).exists() else {}
    manifest = build_store(store, {ns: ScoreSource(path=str(posterior_file))}, replace=[ns] if ns in present else [])
    entry = manifest["sources"][ns]
    return {"store": str(store), "namespace": ns, "status": entry.get("status"), "rows": entry.get("score_rows")}
