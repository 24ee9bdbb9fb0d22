"""The online difficulty sampler (rl/sampler) inside TRL's GRPOTrainer.

TRL's dataloader reads one generation batch ahead of training (accelerate prefetches a batch), so
a torch Sampler would choose step t+1's prompts before step t's verdicts exist. Instead the
trainer keeps its dataloader (it only paces the loop) and, at each generation round, replaces the
batch with the prompts the sampler chooses now (`OnlinePrompts.choose`), each repeated
num_generations times as TRL's RepeatSampler lays them out. Every scored rollout goes back to the
sampler through the reward function's `on_scored` hook (the verdict rule of rl/grpo/rollout_log.py).
The sampler's state is written into each checkpoint folder (`sampler_state.json`, before the
trainer's own files) and read back on resume: the run continues with the prompts it would have
drawn had it never stopped.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from engine.config import ConfigError
from engine.publish import publish_text
from rl.grpo.rollout_log import rollout_row
from rl.sampler import SamplerConfig, build_sampler

STATE_FILE = "sampler_state.json"


class OnlinePrompts:
    """The sampler bound to a TRL dataset: ids <-> rows, verdicts in, checkpoint state out."""

    def __init__(self, cfg: SamplerConfig, dataset, seed: int, prompts_per_round: int, group_size: int):
        infos = dataset.data.column("extra_info").to_pylist()  # the raw column: no image decoding
        self.sampler, self.report = build_sampler(cfg, infos, seed)
        self.row_of = {sid: i for i, sid in enumerate(self.sampler.ids)}
        self.dataset = dataset
        self.prompts = prompts_per_round
        self.group_size = group_size
        self.drawn: list[list[str]] = []  # ids per round of this process (summary)

    def choose(self, batch: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The round's rows: the sampler's choice in TRL's layout (each prompt group_size times in a row)."""
        if len(batch) != self.prompts * self.group_size:
            raise RuntimeError(f"online sampler: TRL handed a generation batch of {len(batch)} rows, expected "
                               f"{self.prompts} prompts x {self.group_size}")
        ids = self.sampler.next_batch(self.prompts)
        self.drawn.append(ids)
        rows = [self.dataset[self.row_of[sid]] for sid in ids]
        return [row for row in rows for _ in range(self.group_size)]

    def on_scored(self, trainer_state, extra_infos: Sequence[dict | None], results: Sequence[dict[str, Any]],
                  completion_ids=None) -> None:
        ids = [(info or {}).get("id") for info in extra_infos]
        if any(sid is None for sid in ids):
            raise ConfigError("online sampler: a scored rollout has no extra_info.id")
        self.sampler.update(ids, [rollout_row(sid, 0, result)["passed"] for sid, result in zip(ids, results)])

    def save(self, checkpoint_dir: Path) -> Path:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        return publish_text(checkpoint_dir / STATE_FILE, json.dumps(self.sampler.state_dict()))

    def load(self, checkpoint_dir: Path) -> None:
        path = checkpoint_dir / STATE_FILE
        if not path.is_file():
            raise ConfigError(f"{checkpoint_dir} has no {STATE_FILE}: it was not written by an online-sampler run "
                              f"(set sampler.kind as that run did, or start in a fresh output_dir)")
        self.sampler.load_state_dict(json.loads(path.read_text()))


def chain(*hooks):
    """One on_scored hook that calls each given hook in turn (rollout log, sampler)."""
    live = [h for h in hooks if h is not None]

    def on_scored(*args, **kwargs):
        for hook in live:
            hook(*args, **kwargs)

    return on_scored
