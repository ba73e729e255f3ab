"""Where the process computes: the device, and the CPU threads Paddle's kernels get.

The thread policy itself is in threads.py, which must not import Paddle (it reads the
user's OMP_NUM_THREADS before Paddle overwrites it).
"""
from __future__ import annotations

from typing import Optional

import paddle

from ..errors import ConfigError
from .threads import compute_threads

DEVICES = ("auto", "cpu", "gpu")   # --device; auto: the GPU when Paddle sees one


def use_compute_threads(local_ranks: int = 1) -> int:
    """Give Paddle's CPU kernels (and the oneDNN convs) ``compute_threads()`` threads."""
    n = compute_threads(local_ranks)
    paddle.base.core.set_num_threads(n)
    return n


def has_gpu() -> bool:
    return paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0


def select_device(requested: Optional[str] = "auto") -> str:
    """``auto`` (the GPU when Paddle sees one), ``cpu`` or ``gpu``; set it and return it."""
    requested = requested or "auto"
    if requested not in DEVICES:
        raise ConfigError(f"--device {requested!r} is not known; choose one of {list(DEVICES)}")
    if requested == "gpu" and not has_gpu():
        why = "this Paddle is built without CUDA" if not paddle.is_compiled_with_cuda() \
            else "Paddle sees no GPU (check CUDA_VISIBLE_DEVICES and the driver)"
        raise ConfigError(f"--device gpu: {why}; use --device cpu (or auto)")
    device = requested if requested != "auto" else ("gpu" if has_gpu() else "cpu")
    paddle.set_device(device)
    return device
