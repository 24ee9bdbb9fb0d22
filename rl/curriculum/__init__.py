"""Curriculum stages as one job (`gradus train curriculum`): SFT / GRPO stages chained by checkpoint."""
