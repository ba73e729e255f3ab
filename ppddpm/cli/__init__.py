"""The command line of every run script (the top layer): parsing, the run's config, output
folders, and one module per mode."""
from .entry import main, run_mode, script_main
from .eval_mode import eval_options
from .resolve import resolve_config

__all__ = ["main", "run_mode", "script_main", "eval_options", "resolve_config"]
