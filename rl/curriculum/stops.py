"""Stage stop criteria as real training callbacks.

- GRPO (TRL backend): `RewardStop`, a transformers TrainerCallback. TRL logs every optimizer step
  (logging_steps=1) with the batch-mean reward; once the mean of the last `window` logged rewards is
  >= `reward_at_least`, it sets `control.should_training_stop`, and the Trainer ends after that
  step (the final model is published as usual).
- SFT (Ray Train): the loop's own check (rl/sft/ray_train.py `LossStop`, set through
  `stop_loss_at_most` / `stop_window`): the loss is averaged over the workers each step, so every
  worker stops at the same step.

Either way the outcome is `{"stopped_early", "reason", "step"}`, recorded in the stage summary.
"""
from __future__ import annotations

from typing import Any


def window_mean(values: list[float], window: int) -> float | None:
    """Mean of the last `window` values, or None while fewer have been seen."""
    if len(values) < window:
        return None
    tail = values[-window:]
    return sum(tail) / window


def reward_stop_callback(reward_at_least: float, window: int) -> Any:
    """A TrainerCallback stopping GRPO once the windowed mean reward reaches the bar; `.result` holds the outcome."""
    from transformers import TrainerCallback

    class RewardStop(TrainerCallback):
        def __init__(self):
            self.rewards: list[float] = []
            self.result: dict[str, Any] = {"stopped_early": False, "reason": "", "step": 0}

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or not isinstance(logs.get("reward"), (int, float)):
                return control
            self.rewards.append(float(logs["reward"]))
            self.result["step"] = state.global_step
            mean = window_mean(self.rewards, window)
            if mean is not None and mean >= reward_at_least and state.global_step < state.max_steps:
                control.should_training_stop = True
                self.result = {"stopped_early": True, "step": state.global_step,
                               "reason": f"mean reward {mean:.4f} over the last {window} steps >= {reward_at_least}"}
            return control

        def on_train_end(self, args, state, control, **kwargs):
            if not self.result["stopped_early"]:
                self.result["step"] = state.global_step

    return RewardStop()
