"""GRPO: one config, two backends (verl on clusters, TRL on one machine)."""
