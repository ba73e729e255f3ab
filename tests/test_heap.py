"""heap.release_freed_memory and heap.trim_heap: freed tensors go back to the system (glibc),
measured on the resident set of a fresh process."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBE = r"""
import sys
import paddle
from ppddpm.runtime.heap import release_freed_memory
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
applied = release_freed_memory() if sys.argv[1] == "on" else False
big = paddle.ones([64, 1024, 1024]); del big   # 256 MiB: raises glibc's dynamic threshold
base = rss()
blocks = [paddle.ones([256, 1024]) for _ in range(256)]   # 256 tensors of 1 MiB
held = rss()
del blocks
print(applied, base, held, rss())
"""


def _probe(mode, **env):
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", **env),
                         timeout=120, check=True).stdout.split()
    return out[0] == "True", *map(float, out[1:])


@pytest.mark.skipif(not os.path.exists("/proc/self/statm") or os.uname().sysname != "Linux",
                    reason="needs Linux /proc to read the resident set")
def test_freed_tensors_return_to_the_system():
    applied, base, held, after = _probe("on")
    assert applied
    assert held - base > 200            # the 256 MiB were really resident
    assert after - base < 30            # and went back when freed
    # Without it, glibc keeps them in its heap (the peak-memory problem of docs/speed.md).
    applied, base, held, after = _probe("off")
    assert not applied and after - base > 200


def test_user_setting_is_left_alone():
    applied, *_ = _probe("on", MALLOC_MMAP_THRESHOLD_="65536")
    assert not applied


# 200k blocks of 1 KiB (malloc, not Python's small-object arenas); every 16th stays alive,
# so the heap cannot shrink from the top and glibc keeps the freed pages mapped. Measured in
# a fresh interpreter, so nothing else in the test process moves the figures.
FRAGMENT = """
import sys
from ppddpm.runtime.heap import trim_heap
def rss():
    with open("/proc/self/status") as f:
        return int(next(l for l in f if l.startswith("VmRSS")).split()[1]) // 1024
blocks = [bytearray(1024) for _ in range(200_000)]
kept = blocks[::16]
del blocks
before = rss()
print(before, rss() if not trim_heap() else rss())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmRSS and glibc are Linux's")
def test_trim_returns_freed_fragmented_memory_to_the_os():
    out = subprocess.run([sys.executable, "-c", FRAGMENT], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout.split()
    before, after = int(out[0]), int(out[1])
    # 200k x 1 KiB = 195 MiB allocated, 15/16 of it freed but still resident before the call
    assert before - after > 100, (before, after)


def test_trim_without_glibc_is_a_no_op(monkeypatch):
    import ctypes
    from ppddpm.runtime.heap import trim_heap
    monkeypatch.setattr(ctypes, "CDLL", lambda *a, **k: (_ for _ in ()).throw(OSError("no libc")))
    assert trim_heap() is False
