"""heap.release_freed_memory: freed tensors go back to the system (glibc), measured on the
resident set of a fresh process."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBE = r"""
import sys
import paddle
from ppddpm.heap import release_freed_memory
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
