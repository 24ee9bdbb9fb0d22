"""After a verl run with the online sampler: the posterior -> sampler_posterior.parquet and, with
`sampler.write_back`, into the store as pass_rate@<tag> (rl/sampler/writeback.py, as after TRL).

verl's v0 trainer calls the plugin's on_batch_end after every step but the last, and the plugin saves
the sampler only where verl checkpointed (global_step_K/gradus_sampler.json). The posterior is put
back together from what the run left:
1. the sampler the plugin ran, rebuilt from the pool, prior and initial state it recorded at start
   (data/sampler_prior.json: the pool after verl's prompt filter, so the ids are the plugin's);
2. its state from the latest gradus_sampler.json of a step before the last, else the initial state;
3. every later step's verdicts from verl's rollout dump (trainer.rollout_data_dir, <step>.jsonl),
   step by step through the same `update` on_batch_end uses, read by the same rule (rollout_row).
A step whose verdicts neither the state nor the dump holds (the dump is off, or its file is gone) is
named in the record's `missing_steps` with a warning: the posterior is written without it, never
silently.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from engine.config import ConfigError
from rl.grpo.config import GrpoJobConfig
from rl.grpo.rollout_log import read_verl_dump
from rl.grpo.verl_sampler import STATE_FILE, prior_path, read_settings
from rl.sampler.core import OnlineDifficultySampler
from rl.sampler.writeback import POSTERIOR, write_back, write_posterior

log = logging.getLogger(__name__)


def saved_states(checkpoints: Path, before: int) -> list[tuple[int, Path]]:
    """(step, file) of the plugin's saved states for steps before `before`, latest first. The last step
    never has one (verl skips its on_batch_end): a file there is an earlier run's."""
    found = []
    for path in Path(checkpoints).glob(f"global_step_*/{STATE_FILE}"):
        step = int(path.parent.name.rsplit("_", 1)[1])
        if step < before:
            found.append((step, path))
    return sorted(found, reverse=True)


def start_state(prior_record: dict[str, Any], checkpoints: Path, final_step: int) -> tuple[dict[str, Any], str | None]:
    """The sampler's state at the latest point the plugin saved it (or before step 1), and its file."""
    for _, path in saved_states(checkpoints, final_step):
        state = json.loads(path.read_text())
        if state.get("awaiting"):  # the plugin writes it after the step's update; anything else is not its file
            raise ConfigError(f"{path}: a sampler state still awaiting verdicts, not one the plugin writes after a step")
        return state["sampler"], str(path)
    return prior_record["initial_state"], None


def replay(sampler: OnlineDifficultySampler, dump: Path | None, steps: list[int]) -> tuple[list[int], list[int]]:
    """Each step's verdicts from verl's dump through `update`, in step order; returns (replayed, missing)."""
    present = [s for s in steps if dump is not None and (dump / f"{s}.jsonl").is_file()]
    if not present:
        return [], steps
    rows = read_verl_dump(dump, steps=present).to_pylist()
    by_step: dict[int, list[dict[str, Any]]] = {s: [] for s in present}
    for row in rows:
        if row["id"] is None or row["step"] not in by_step:
            raise ConfigError(f"verl's dump in {dump} has a rollout of step {row['step']} with sample id {row['id']!r}: "
                              f"every rollout of steps {present} needs its sample id and its file's step")
        by_step[row["step"]].append(row)
    replayed = [s for s in present if by_step[s]]  # an empty file holds no verdicts: missing, not replayed
    for step in replayed:
        sampler.update([r["id"] for r in by_step[step]], [r["passed"] for r in by_step[step]])
    return replayed, [s for s in steps if s not in replayed]


def verl_posterior(cfg: GrpoJobConfig, final_step: int, provenance: dict[str, Any]) -> dict[str, Any]:
    """The online sampler's posterior after a verl run that ended at `final_step` (module docstring):
    sampler_posterior.parquet under output_dir, the store write-back, and what went into them."""
    from rl.grpo.verl_launch import sampler_settings_path

    settings_file = sampler_settings_path(cfg)
    settings = read_settings(settings_file)
    record_file = prior_path(settings_file)
    if not record_file.is_file():
        raise ConfigError(f"{record_file} is missing: the sampler plugin writes it when verl builds the train dataset; "
                          "without it the sampler's pool and prior are unknown")
    record = json.loads(record_file.read_text())
    sampler = OnlineDifficultySampler.from_prior(record["prior"], cfg=settings["sampler"], seed=settings["seed"])
    state, state_file = start_state(record, Path(settings["checkpoint_dir"]), final_step)
    sampler.load_state_dict(state)
    out = Path(cfg.output_dir).resolve()
    dump = out / cfg.verl.rollout_data_dir if cfg.verl.rollout_data_dir else None
    replayed, missing = replay(sampler, dump, list(range(sampler.step + 1, final_step + 1)))
    result: dict[str, Any] = {"kind": "online", "prior": record["report"], "state_file": state_file, "state_step": int(state["step"]),
                              "rollout_dump": str(dump) if dump else "", "replayed_steps": replayed, "missing_steps": missing,
                              "posterior": str(write_posterior(sampler, out / POSTERIOR, provenance))}
    if missing:
        why = "verl.rollout_data_dir is off" if dump is None else f"no <step>.jsonl for them in {dump}"
        result["warning"] = (f"the posterior lacks the verdicts of steps {missing}: the sampler state ends at step "
                             f"{result['state_step']} and {why}")
        log.warning("gradus online sampler write-back: %s", result["warning"])
    if settings["sampler"].write_back:
        result["write_back"] = write_back(settings["sampler"].store, settings["sampler"].write_back, Path(result["posterior"]))
    return result
