"""gradus engine: the library behind the `gradus` CLI and the Ray pipelines."""

__version__ = "0.1.0"
