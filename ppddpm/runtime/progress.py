"""What a waiting user sees: progress bars that stay readable, and one way to say a line.

- ``say`` prints a status line on rank 0 unless asked to be quiet; ``note`` prints on rank 0
  to stderr even when quiet (what a user must see: fallbacks, mismatches).

- ``progress(iterable, total, desc)`` is the one progress display of every wait (sampling,
  evaluation, bits/dim, downloads, image checks). On a terminal it is a tqdm bar; on any
  other stderr (a redirected log, a pipe) it prints a plain line (``desc: 120/1000 steps
  (12%), 3.1 steps/s, 4m 40s left``) every ``PLAIN_INTERVAL`` seconds, shared by all open
  displays, and a last line when a display that printed one ends: a wait shorter than the
  interval prints nothing. A log gets no carriage returns or escape codes.
  ``PPDDPM_PROGRESS_SECONDS`` sets the interval. When
  displays are nested (images, and the steps of each batch), one line shows them all,
  outermost first: ``images: 64/400 img (16%), ... | DDPMSampler: 500/1000 step (50%), ...``.
- ``bars_wanted`` says whether a tqdm bar would be drawn (stderr a terminal, not quiet).
- Python warnings printed while bars run go through ``tqdm.write``, which clears the bars,
  prints the line and redraws them (``route_warnings_through_bars``). A warning ppddpm
  itself issues (e.g. "skipped 3 unreadable image file(s) ...") is one plain line,
  ``warning: ...``, without Python's file name, category and source line; warnings of other
  packages keep Python's form, which says where they come from.
- Paddle's C++ log lines (glog) cannot be routed; ppddpm/__init__.py sets
  GLOG_minloglevel=2 before Paddle loads, unless the user set it, so its INFO and WARNING
  lines (e.g. "Paddle static graph(PIR) not support input out tensor" on every export)
  stay out of the bars. GLOG_minloglevel=0 shows them again.
"""
from __future__ import annotations

import os
import sys
import time
import warnings
from typing import Iterable, Optional

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


PLAIN_INTERVAL = 10.0    # seconds between plain progress lines (PPDDPM_PROGRESS_SECONDS)
_last_plain_line = [0.0]   # when any plain display last printed: one steady rhythm for all
_open_plain: list = []     # the plain displays now running, outermost first


def plain_interval() -> float:
    try:
        return max(0.0, float(os.environ.get("PPDDPM_PROGRESS_SECONDS", PLAIN_INTERVAL)))
    except ValueError:
        return PLAIN_INTERVAL


def duration(seconds: float) -> str:
    """3s, 4m 05s, 2h 03m."""
    seconds = int(round(max(seconds, 0.0)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


class PlainProgress:
    """tqdm's interface (iterate, ``update``, ``set_postfix``, ``close``, ``with``) printing
    plain lines to a stream that is not a terminal (see the module docstring)."""

    def __init__(self, iterable: Optional[Iterable] = None, total: Optional[int] = None,
                 desc: str = "", unit: str = "it", initial: int = 0, stream=None,
                 interval: Optional[float] = None, leave: bool = True):
        if total is None and iterable is not None:
            try:
                total = len(iterable)
            except TypeError:
                total = None
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n = self.start_n = int(initial)
        self.stream = stream
        self.interval = plain_interval() if interval is None else interval
        self.started = time.monotonic()
        self.postfix = ""
        self.leave = leave        # False: an inner display, which prints no last line
        self.printed = False
        self.closed = False
        self._register()

    def _register(self) -> None:
        _open_plain.append(self)

    def __iter__(self):
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __len__(self) -> int:
        return self.total or 0

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **kwargs) -> None:
        items = dict(ordered_dict or {}, **kwargs)
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_description(self, desc: str = "", refresh: bool = True) -> None:
        self.desc = desc

    def refresh(self) -> None:
        pass

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()   # a line when the interval has passed since the last line
        if now - max(_last_plain_line[0], self.started) >= self.interval:   # and this start
            shown = [d for d in _open_plain if d.stream is self.stream] or [self]
            self._print(" | ".join(d.line(now) for d in shown))
            for d in shown:
                d.printed = True

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self in _open_plain:
            _open_plain.remove(self)
        if self.printed and self.leave:   # a display that reported ends with its total and time
            done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
            self._print(f"{self.desc}: {done} {self.unit} in "
                        f"{duration(time.monotonic() - self.started)}" + self._tail())

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = (self.n - self.start_n) / elapsed
        text = f"{self.desc}: {self.n}"
        if self.total:
            text += f"/{self.total} {self.unit} ({100.0 * self.n / self.total:.0f}%)"
        else:
            text += f" {self.unit}"
        text += f", {rate:.3g} {self.unit}/s" if rate >= 1 or rate == 0 else \
            f", {duration(1.0 / rate)}/{self.unit}"
        if self.total and rate > 0 and self.n < self.total:
            text += f", {duration((self.total - self.n) / rate)} left"
        return text + self._tail()

    def _tail(self) -> str:
        return f" ({self.postfix})" if self.postfix else ""

    def _print(self, text: str) -> None:
        print(text, file=self.stream or sys.stderr, flush=True)
        self.printed = True
        _last_plain_line[0] = time.monotonic()


class _NoProgress(PlainProgress):
    """Nothing shown (quiet, or not rank 0); still iterates and counts."""

    def _register(self) -> None:
        pass

    def update(self, n: int = 1) -> None:
        self.n += n

    def close(self) -> None:
        self.closed = True


def progress(iterable: Optional[Iterable] = None, total: Optional[int] = None, desc: str = "",
             unit: str = "it", enabled: bool = True, initial: int = 0, leave: bool = True,
             stream=None, interval: Optional[float] = None, **bar_options):
    """The progress display of a wait: a tqdm bar when ``stream`` (stderr) is a terminal,
    else plain lines at a steady interval, nothing when not ``enabled`` or not on rank 0.
    Use it as tqdm: iterate over it, or ``update(n)`` and ``close()`` (or ``with``).
    ``bar_options`` (e.g. ``unit_scale=True``) go to the tqdm bar only."""
    out = sys.stderr if stream is None else stream
    if not enabled or not is_main():
        return _NoProgress(iterable, total, desc, unit, initial, out)
    if stream_is_terminal(out):
        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, leave=leave,
                    file=out, dynamic_ncols=True, **bar_options)
    return PlainProgress(iterable, total, desc, unit, initial, out, interval, leave)


PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def warning_line(message, category, filename, lineno, line=None) -> str:
    """``warning: <message>`` for ppddpm's own warnings, Python's format for the rest."""
    if os.path.abspath(str(filename)).startswith(PACKAGE_DIR + os.sep):
        return "warning: " + " ".join(str(message).split())
    return warnings.formatwarning(message, category, filename, lineno, line).rstrip("\n")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    tqdm.write(warning_line(message, category, filename, lineno, line), file=file or sys.stderr)


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
