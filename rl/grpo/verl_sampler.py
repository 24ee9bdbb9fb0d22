"""The online sampler inside verl 0.9.1's trainer, through the one hook its v0 trainer keeps: `data.custom_cls`.

verl 0.9.1 has no sampler option left in its data config (`data.sampler.class_path` and the
curriculum `update(batch)` hook are gone); `main_ppo` with `trainer.use_v1=false` builds its train
dataset with `data.custom_cls.{path,name}`, iterates it with a StatefulDataLoader over a
SequentialSampler (`data.shuffle=false`) and, after every step but the last, calls
`train_dataset.on_batch_end(batch=batch)` with the step's scored batch. `OnlineSamplerDataset` uses
exactly that:

- `__getitem__(i)`: position i of the run is slot i % B of step i // B (B = the dataloader's batch);
  the first slot of a step asks the sampler for the step's B prompts, every slot returns its prompt's
  row, built by verl's own RLHFDataset code. `__len__` is steps * B, so the run is one epoch.
- `on_batch_end(batch)`: every rollout's verdict (rl/grpo/rollout_log.py `rollout_row`, from the
  reward keys rl/reward.py returns) goes to `sampler.update`, keyed by the row's extra_info.id.
- state: the StatefulDataLoader saves the dataset's `state_dict()` in verl's checkpoint
  (global_step_N/data.pt). verl saves it *before* on_batch_end of step N, so on_batch_end writes
  the sampler's state after step N's update next to it (global_step_N/gradus_sampler.json) and a
  resume loads that one; without it (the run died between the two) step N's verdicts are lost and
  the resume says so.
- at start the train instance writes the pool verl kept, its prior and the state before step 1
  (`sampler_prior.json` beside the settings file): with the saved states and verl's rollout dump, the
  write-back after the run (rl/grpo/verl_sampler_writeback.py) rebuilds the posterior of every step.

verl loads the class by module name (`data.custom_cls.path=pkg://rl.grpo.verl_sampler`): its
overlong-prompt filter pickles the dataset into a process pool, where a class loaded from a file path
is rebuilt without its base class's methods and every row is silently dropped.
The dataloader must run in this process (`data.dataloader_num_workers=0`): a worker process would
hold its own copy of the sampler and prefetch steps before their predecessors' verdicts exist.
verl builds its validation dataset with the same class: an instance built on other files than
`data.train_files` is verl's plain dataset. `data.gradus_sampler` names the settings file
(`write_settings`): the sampler config, seed, step count and checkpoint folder.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from verl.utils.dataset.rl_dataset import RLHFDataset

from engine.config import ConfigError, from_dict, to_dict
from engine.publish import publish_text
from rl.grpo.rollout_log import rollout_row
from rl.sampler.config import SamplerConfig
from rl.sampler.prior import build_sampler

log = logging.getLogger(__name__)

SETTINGS_KEY = "gradus_sampler"  # data.gradus_sampler: the settings file's path
SETTINGS_FILE = "sampler_settings.json"
STATE_FILE = "gradus_sampler.json"  # in verl's global_step_N folder: the sampler after step N's verdicts
PRIOR_FILE = "sampler_prior.json"  # beside the settings file: the pool verl kept, its prior and the state before step 1
CLASS_NAME = "OnlineSamplerDataset"
REWARD_KEYS = ("score", "acc", "reason", "unjudged")  # what rollout_row reads of compute_score's result


def write_settings(sampler: SamplerConfig, *, seed: int, steps: int, checkpoint_dir: str | Path, path: str | Path) -> Path:
    """The plugin's settings as one JSON file (a Hydra override cannot carry the nested config)."""
    settings = {"sampler": to_dict(sampler), "seed": seed, "steps": steps, "checkpoint_dir": str(checkpoint_dir)}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return publish_text(path, json.dumps(settings, indent=2) + "\n")


def read_settings(path: str | Path) -> dict[str, Any]:
    settings = json.loads(Path(path).read_text())
    settings["sampler"] = from_dict(SamplerConfig, settings["sampler"], "sampler")
    if settings["sampler"].kind != "online":
        raise ConfigError(f"sampler settings {path}: kind {settings['sampler'].kind!r}; the verl plugin is the online sampler")
    return settings


def prior_path(settings_path: str | Path) -> Path:
    return Path(settings_path).with_name(PRIOR_FILE)


def write_prior(sampler, report: dict[str, Any], path: str | Path) -> Path:
    """What the write-back after the run rebuilds the sampler from (rl/grpo/verl_sampler_writeback.py): the pool
    as verl's prompt filter left it, the prior, the state before any verdict, and the prior's report."""
    record = {"prior": sampler.prior_dict(), "initial_state": sampler.state_dict(), "report": report}
    return publish_text(path, json.dumps(record, default=str) + "\n")


def _files(value) -> list[str]:
    return [str(value)] if isinstance(value, (str, Path)) else [str(v) for v in value]


def _plain(value: Any) -> Any:
    """numpy scalars (verl stacks reward keys into arrays) as Python values, as rollout_row expects."""
    return value.item() if hasattr(value, "item") and getattr(value, "ndim", 1) == 0 else value


def verdicts(batch) -> tuple[list[str], list[bool | None]]:
    """Sample id and verdict of every rollout in a scored verl batch (DataProto)."""
    rows = batch.non_tensor_batch
    if "extra_info" not in rows:
        raise ConfigError("verl batch without extra_info: the online sampler needs the dataset's rows in the batch")
    scores = batch.batch["token_level_scores"].sum(dim=-1).tolist() if "token_level_scores" in batch.batch.keys() else None
    ids, out = [], []
    for r, info in enumerate(rows["extra_info"]):
        result = {k: _plain(rows[k][r]) for k in REWARD_KEYS if k in rows}
        if "score" not in result and scores is not None:
            result["score"] = scores[r]
        ids.append(str(info["id"]))
        out.append(rollout_row(info["id"], 0, result)["passed"])
    return ids, out


def _settings(config) -> dict[str, Any]:
    """The train instance's settings, after the data-config checks the plugin relies on."""
    if config.get("dataloader_num_workers", 0):
        raise ConfigError("the online sampler needs data.dataloader_num_workers=0 (a worker process would hold a stale "
                          "copy of the sampler and prefetch prompts before the previous step's verdicts)")
    if config.get(SETTINGS_KEY) is None:
        raise ConfigError(f"data.{SETTINGS_KEY} (the sampler settings file) is not set: launch with `gradus train grpo`")
    return read_settings(config[SETTINGS_KEY])


class OnlineSamplerDataset(RLHFDataset):
    """verl's RLHFDataset whose train instance serves the online sampler's prompts (module docstring)."""

    def __init__(self, data_files, tokenizer, config, processor=None, max_samples: int = -1):
        driven = _files(data_files) == _files(config.train_files)  # else verl's validation set: a plain dataset
        settings = _settings(config) if driven else None  # checked before verl reads and filters the data
        super().__init__(data_files, tokenizer, config, processor=processor, max_samples=max_samples)
        self.sampler = None
        if settings is None:
            return
        self.batch_size = int(config.get("gen_batch_size") or config.train_batch_size)
        self.steps = int(settings["steps"])
        self.checkpoint_dir = Path(settings["checkpoint_dir"])
        infos = list(self.dataframe["extra_info"])  # after verl's overlong-prompt filter: only rows it kept
        if len(infos) < self.batch_size:
            raise ConfigError(f"the online sampler has {len(infos)} prompts for batches of {self.batch_size} (verl's prompt "
                              f"filter dropped {self.filtered_out}: too long for data.max_prompt_length, or unreadable)")
        self.sampler, self.prior_report = build_sampler(settings["sampler"], infos, settings["seed"])
        self.row_of = {str(info["id"]): k for k, info in enumerate(infos)}
        self.picks: list[str] = []  # the current step's prompts
        self.awaiting = False  # drawn, verdicts not yet seen
        self.prior_report["dropped_by_verl_filter"] = self.filtered_out
        write_prior(self.sampler, self.prior_report, prior_path(config[SETTINGS_KEY]))
        log.info("gradus online sampler: %s", json.dumps(self.prior_report, default=str))

    def maybe_filter_out_long_prompts(self, dataframe=None):
        """verl's filter, counted: it drops a row it cannot process without an error."""
        kept = super().maybe_filter_out_long_prompts(dataframe)
        self.filtered_out = len(dataframe) - len(kept)
        return kept

    def __len__(self) -> int:
        return self.steps * self.batch_size if self.sampler is not None else super().__len__()

    def __getitem__(self, item):
        if self.sampler is None:
            return super().__getitem__(item)
        step, slot = divmod(int(item), self.batch_size)
        if not self.picks or step != self.sampler.step - 1:  # the first slot of a step not drawn yet
            self._draw(step)
        return super().__getitem__(self.row_of[self.picks[slot]])

    def _draw(self, step: int) -> None:
        if step != self.sampler.step:
            raise RuntimeError(f"verl's dataloader asked for step {step + 1}'s prompts while the sampler is at step "
                               f"{self.sampler.step + 1}: the train dataloader must be sequential (data.shuffle=false) "
                               "and restored with the sampler's state")
        if self.awaiting:
            raise RuntimeError(f"step {step + 1}'s prompts asked for before step {step}'s verdicts reached the sampler: "
                               "verl did not call on_batch_end (its v1 trainer does not; use trainer.use_v1=false)")
        self.picks = self.sampler.next_batch(self.batch_size)
        self.awaiting = True

    def on_batch_end(self, batch) -> None:
        """verl's v0 trainer, after each step but the last: the step's rollouts, scored."""
        if self.sampler is None:
            return
        if not self.awaiting:
            raise RuntimeError(f"on_batch_end called twice for step {self.sampler.step}: its verdicts would count twice")
        ids, judged = verdicts(batch)
        if set(ids) != set(self.picks):
            raise RuntimeError(f"verl's batch holds prompts {sorted(set(ids) - set(self.picks))[:5]} the sampler did not pick "
                               f"(or misses {sorted(set(self.picks) - set(ids))[:5]})")
        self.sampler.update(ids, judged)
        self.awaiting = False
        self._save_after_update()

    def _save_after_update(self) -> None:
        """verl checkpointed this step before its verdicts came: the updated state goes next to its data.pt."""
        folder = self.checkpoint_dir / f"global_step_{self.sampler.step}"
        if folder.is_dir():
            publish_text(folder / STATE_FILE, json.dumps(self.state_dict()) + "\n")

    def state_dict(self) -> dict[str, Any]:
        if self.sampler is None:
            return {}
        return {"sampler": self.sampler.state_dict(), "picks": list(self.picks), "awaiting": self.awaiting}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.sampler is None or not state:
            return
        if state["awaiting"]:  # saved mid-step: the state after this step's verdicts, if on_batch_end wrote it
            after = self.checkpoint_dir / f"global_step_{state['sampler']['step']}" / STATE_FILE
            if after.is_file():
                state = json.loads(after.read_text())
            else:
                log.warning("gradus online sampler: %s is missing (the run stopped between verl's checkpoint and the end of "
                            "its step): step %d's verdicts are not in the restored sampler", after, state["sampler"]["step"])
                state = dict(state, awaiting=False)
        self.sampler.load_state_dict(state["sampler"])
        self.picks = list(state["picks"])
        self.awaiting = bool(state["awaiting"])
