"""Stop signals (SIGINT, SIGTERM, SIGHUP) that end a run cleanly instead of killing it.

Paddle installs a C++ SIGTERM handler when it is imported (it prints "FatalError:
Termination signal is detected" and exits 143), and Python's SIGINT handler raises
KeyboardInterrupt wherever the main thread happens to be, including inside the Python
backward of a PyLayer that Paddle's C++ autograd calls (models/conv.py), where it comes
back as an ``OSError (External)``. :class:`StopSignals` replaces both while it is active
(install it after Paddle is imported):

* ``raise_at_once=False`` (training): the handler only records the signal and returns.
  The training loop asks :attr:`StopSignals.signum` between iterations, finishes the
  current one, saves and raises :class:`Interrupted`. Inside :meth:`interruptible`
  (work that may be dropped, such as a sample grid) the signal raises :class:`SignalExit`
  at once instead.
* ``raise_at_once=True`` (sampling, evaluation): the signal raises :class:`SignalExit`.

Data loader workers are forked with these handlers and ignore the signals (Ctrl-C reaches
the whole process group; the main process decides). A SIGTERM sent to the whole group
still ends the workers (Paddle's handler in them): see :meth:`defer_child_errors`.

A second SIGINT (Ctrl-C pressed again) exits at once with status 130; every file is
written through a temp file and a rename (``ppddpm.fileio``), so no file is left
half-written. Repeated SIGTERM/SIGHUP are ignored, since launchers send several
(paddle.distributed.launch sends SIGTERM three times, 0.2 s apart).

Exit status of a run stopped by a signal: 128 + the signal number (130 SIGINT,
143 SIGTERM, 129 SIGHUP), as shells report processes killed by one.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Callable, Dict, List, Optional

from ..errors import PPDDPMError

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                     if hasattr(signal, name))


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def exit_status(signum: int) -> int:
    return 128 + int(signum)


class Interrupted(PPDDPMError):
    """A run stopped by a signal after putting its files in order; exit 128 + signal."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = int(signum)

    @property
    def exit_code(self) -> int:
        return exit_status(self.signum)


class SignalExit(KeyboardInterrupt):
    """Raised by the handler where a signal may stop the work at once."""

    def __init__(self, signum: int):
        super().__init__(signal_name(signum))
        self.signum = int(signum)


def _write_stderr(text: str) -> None:
    """Write to stderr without Python's buffered writer: the handler may run while that
    writer is in the middle of a write (a reentrant call would raise)."""
    try:
        os.write(2, text.encode("utf-8", "replace"))
    except OSError:
        pass


class StopSignals:
    """Context manager: handle SIGINT, SIGTERM and SIGHUP as described in the module
    docstring. ``signum`` is the first stop signal received (None before any).
    ``on_force_exit`` callables run (e.g. releasing a lock) before a second Ctrl-C exits.
    ``ignore_after``: on exit, ignore the stop signals instead of restoring the previous
    handlers (for a process that ends right after)."""

    def __init__(self, raise_at_once: bool = False, announce: Optional[str] = None,
                 on_force_exit: Optional[List[Callable[[], None]]] = None,
                 ignore_after: bool = False):
        self.raise_at_once = raise_at_once
        self.ignore_after = ignore_after  # on exit, ignore the stop signals (process ending)
        self.announce = announce
        self.on_force_exit = list(on_force_exit or [])
        self.signum: Optional[int] = None
        self._raising = raise_at_once
        self._previous: Dict[int, object] = {}
        self._owner = os.getpid()

    # -- installing --------------------------------------------------------------
    def __enter__(self) -> "StopSignals":
        self._owner = os.getpid()
        if threading.current_thread() is threading.main_thread():  # signals reach only it
            for s in STOP_SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        # Nested in another StopSignals (the CLI's): it takes over the stop already under
        # way, so that a late repeat of the signal counts as a repeat there too.
        outer = getattr(self._previous.get(signal.SIGTERM), "__self__", None)
        if isinstance(outer, StopSignals) and outer.signum is None:
            outer.signum = self.signum
        sigchld = getattr(signal, "SIGCHLD", None)
        for s, handler in self._previous.items():
            if self.ignore_after and s in STOP_SIGNALS:
                handler = signal.SIG_IGN
            if s == sigchld and self.signum is not None:
                # stopping: the loader's workers ended with the group's signal, and Paddle's
                # handler would print their end as a traceback while the process exits
                handler = signal.SIG_DFL
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()

    @property
    def installed(self) -> bool:
        return bool(self._previous)

    # -- the handler ---------------------------------------------------------------
    def _handle(self, signum: int, frame) -> None:
        if os.getpid() != self._owner:
            # A forked child (a data loader worker) inherited the handler; Ctrl-C reaches the
            # whole process group, and the main process decides when everybody stops.
            return
        if self.signum is None:
            self.signum = signum
            if self.announce and not self._raising:
                _write_stderr(f"\n{signal_name(signum)} received: {self.announce}\n")
            if self._raising:
                raise SignalExit(signum)
            return
        if signum == signal.SIGINT:
            _write_stderr("\nSIGINT again: exiting at once (every file is either complete or "
                 "untouched)\n")
            for fn in self.on_force_exit:
                try:
                    fn()
                except Exception:
                    pass
            os._exit(exit_status(signum))
        # A repeated SIGTERM or SIGHUP: already stopping.

    def defer_child_errors(self) -> None:
        """A SIGTERM sent to the whole process group (Slurm, paddle.distributed.launch) also
        ends the data loader's workers, and Paddle's SIGCHLD handler then raises wherever the
        main thread is. Once a stop signal came, that handler is skipped (the loader raises
        on the next batch instead, between iterations). Call after each batch (Paddle
        installs its handler when the first one is fetched); restored on exit."""
        sigchld = getattr(signal, "SIGCHLD", None)
        if sigchld is None or not self.installed or sigchld in self._previous:
            return
        paddle_handler = signal.getsignal(sigchld)
        if not callable(paddle_handler):  # no multi-process loader (yet)
            return

        def on_child(signum, frame):
            if self.signum is None:
                paddle_handler(signum, frame)
        self._previous[sigchld] = signal.signal(sigchld, on_child)

    @contextlib.contextmanager
    def interruptible(self):
        """Within, a stop signal raises :class:`SignalExit` at once (and so does entering
        after one arrived)."""
        if self.signum is not None:
            raise SignalExit(self.signum)
        before, self._raising = self._raising, True
        try:
            yield
        finally:
            self._raising = before

