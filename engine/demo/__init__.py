"""The main job (`gradus demo`, `make demo`): see engine/demo/run.py."""
from engine.demo.config import DemoConfig
from engine.demo.run import run_demo

__all__ = ["DemoConfig", "run_demo"]
