"""What a waiting user sees: progress bars that stay readable, and one way to say a line.

- ``say`` prints a status line on rank 0 unless asked to be quiet; ``note`` prints on rank 0
  to stderr even when quiet (what a user must see: fallbacks, mismatches).

- Bars are drawn only when stderr is a terminal: a redirected log gets no carriage
  returns or escape codes (``bars_wanted``).
- Python warnings printed while bars run go through ``tqdm.write``, which clears the bars,
  prints the line and redraws them (``route_warnings_through_bars``).
- Paddle's C++ log lines (glog) cannot be routed; ppddpm/__init__.py sets
  GLOG_minloglevel=2 before Paddle loads, unless the user set it, so its INFO and WARNING
  lines (e.g. "Paddle static graph(PIR) not support input out tensor" on every export)
  stay out of the bars. GLOG_minloglevel=0 shows them again.
"""
from __future__ import annotations

import sys
import warnings

from tqdm import tqdm

from .dist import is_main


def stream_is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):   # closed or replaced streams
        return False


def bars_wanted(quiet: bool, stream=None) -> bool:
    """Draw bars unless asked to be quiet or stderr is not a terminal."""
    return not quiet and stream_is_terminal(sys.stderr if stream is None else stream)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    text = warnings.formatwarning(message, category, filename, lineno, line)
    tqdm.write(text.rstrip("\n"), file=file or sys.stderr)


def route_warnings_through_bars() -> None:
    """Print Python warnings with tqdm.write (harmless when no bar is running)."""
    warnings.showwarning = _show_warning


def say(message: str, quiet: bool = False) -> None:
    """A status line on stdout, from rank 0 only, unless ``quiet``."""
    if not quiet and is_main():
        print(message, flush=True)


def note(message: str) -> None:
    """A line the user should see even when quiet: stderr, rank 0."""
    if is_main():
        print(message, file=sys.stderr, flush=True)
