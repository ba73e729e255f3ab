"""Give freed tensors back to the system (glibc's malloc only).

Paddle allocates CPU tensors with the C library's malloc. glibc serves a large block from
its own mapping only while the block is above a *dynamic* threshold, which rises to the
size of the largest block freed so far (up to 32 MiB). After the first training step
almost every activation therefore comes from the heap, and when a step's activations are
freed the heap keeps the pages: the process's resident memory grows to the sum of the
fragmented heap and never shrinks. For the CIFAR-10 UNet at batch 8 the peak was 1.50 GiB
with the dynamic threshold and 1.18 GiB with a fixed one (docs/speed.md).

``release_freed_memory()`` fixes the threshold (``mallopt(M_MMAP_THRESHOLD, 128 KiB)``,
glibc's initial value): every block of 128 KiB or more is its own mapping and goes back
to the system when freed. A user's own ``MALLOC_MMAP_THRESHOLD_`` is left alone.

``keep_freed_memory()`` is what training uses unless ``--low_memory`` is on: thresholds fixed
high (mmap 32 MiB, trim 256 MiB), so the activations freed by one step serve the next from
the heap. With the dynamic threshold an activation as large as the largest block freed so far
is still mapped afresh, and every page of it faults in again: 9.7k page faults per iteration
of a 652k-parameter UNet at batch 64, 1.2k with the fixed thresholds
(benchmarks/RESULTS.md, "Training small models").

``trim_heap()`` hands back the free pages the heap holds now (``malloc_trim(0)``). Sampling
calls it once the engine holds the weights and the dynamic-graph network is freed: ~140 MB
for CIFAR-10 that glibc would otherwise keep mapped among small live blocks (RSS 466 MiB
after ``del model``, 298 MiB after the trim; issue 17).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3    # glibc malloc.h
DEFAULT_THRESHOLD = 128 * 1024  # glibc's own starting value
_applied = None


def release_freed_memory(threshold: int = DEFAULT_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold; True when applied (False on other C libraries or
    when the user set MALLOC_MMAP_THRESHOLD_ themselves)."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    mallopt = _glibc("mallopt")
    if mallopt is None:
        return False   # not glibc (musl, macOS): nothing to tune
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _applied = mallopt(_M_MMAP_THRESHOLD, int(threshold)) == 1
    return _applied


KEEP_MMAP_THRESHOLD = 32 * 2 ** 20    # glibc's largest dynamic threshold
KEEP_TRIM_THRESHOLD = 256 * 2 ** 20


def keep_freed_memory() -> bool:
    """Fix glibc's mmap and trim thresholds high (see the module docstring); True when applied.
    Not applied after ``release_freed_memory`` (--low_memory), on other C libraries, or when
    the user set MALLOC_MMAP_THRESHOLD_ or MALLOC_TRIM_THRESHOLD_."""
    if _applied or {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"} & set(os.environ):
        return False
    mallopt = _glibc("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return (mallopt(_M_MMAP_THRESHOLD, KEEP_MMAP_THRESHOLD) == 1
            and mallopt(_M_TRIM_THRESHOLD, KEEP_TRIM_THRESHOLD) == 1)


def trim_heap() -> bool:
    """Collect garbage, then return the heap's free pages to the system; False (nothing
    done) where the C library is not glibc."""
    gc.collect()
    trim = _glibc("malloc_trim")
    if trim is None:
        return False
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    trim(0)
    return True


def _glibc(name: str):
    """glibc's function ``name``, or None on another C library."""
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None
