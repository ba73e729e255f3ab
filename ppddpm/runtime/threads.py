"""CPU thread policy (imports no Paddle, so ppddpm/__init__.py can load it first).

Paddle sets OMP_NUM_THREADS=1 when it is imported unless the variable is already set, so
the user's own setting is only visible before that import; ``USER_OMP`` records it.

* Sampling with the Paddle Inference predictor: its oneDNN kernels use
  ``set_cpu_math_library_num_threads(n)`` threads, n = the user's OMP_NUM_THREADS if set,
  else every core this process may use.
* Training and dynamic-graph sampling (``device.use_compute_threads``): the same n, divided by
  the number of ranks started on this machine. The convolutions run on oneDNN
  (models/conv.py), which uses every thread it is given; Paddle's own kernels (group norm,
  silu, adds) use OpenMP too. Set OMP_NUM_THREADS=1 to keep Paddle's old default.
"""
from __future__ import annotations

import os
import sys
from typing import Optional


def _startup_env(name: str) -> Optional[str]:
    """The variable as the process was started with (/proc/self/environ, Linux), which
    Paddle's os.environ writes do not change; None if absent or unreadable."""
    try:
        with open("/proc/self/environ", "rb") as f:
            for item in f.read().split(b"\0"):
                key, _, value = item.partition(b"=")
                if key.decode(errors="replace") == name:
                    return value.decode(errors="replace")
    except OSError:
        pass
    return None


def _user_omp() -> Optional[str]:
    env = os.environ.get("OMP_NUM_THREADS")
    if "paddle" not in sys.modules or env != "1":
        return env   # Paddle, imported first, only ever writes "1"
    # Paddle was imported first and the value is "1": the user's only if it was there at start.
    return _startup_env("OMP_NUM_THREADS")


USER_OMP: Optional[str] = _user_omp()


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def user_threads() -> Optional[int]:
    try:
        return max(1, int(USER_OMP)) if USER_OMP else None
    except ValueError:
        return None


def compute_threads(local_ranks: int = 1) -> int:
    """Threads for one training / dygraph process: the user's OMP_NUM_THREADS, else the
    available cores shared among the ``local_ranks`` processes on this machine."""
    return user_threads() or max(1, available_cores() // max(1, int(local_ranks)))


def sampling_threads() -> int:
    """Threads for the inference predictor: the user's OMP_NUM_THREADS, else all cores."""
    return compute_threads()
