"""The main job (`gradus demo`, `make demo`): see pipelines/demo/run.py."""
from pipelines.demo.config import DemoConfig
from pipelines.demo.run import run_demo

__all__ = ["DemoConfig", "run_demo"]
