"""Old import path of the source resolver (rl/sources.py), kept for scripts that still import it from here."""
from rl.sources import resolve_data, resolve_model  # noqa: F401
