"""Checks that weights hold no NaN or infinity, so that no such file is ever written.

The trainer checks the weights after every update (:func:`all_finite`: one sum per
tensor and one ``add_n``, about as fast as reading the weights once: 15 ms for the
35.7M weights of the CIFAR-10 UNet on a quiet 2-core machine, 47-57 ms with its cores
shared by ten processes, against 2.3 s for a training step at batch 8).
The EMA needs no per-iteration check: each update is a convex combination
``d * shadow + (1 - d) * weights`` of finite numbers, which stays finite; it is checked
with the weights before every save and when a checkpoint is loaded.
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping, Optional

import numpy as np
import paddle


def all_finite(tensors: Iterable[paddle.Tensor]) -> bool:
    """True when no element of ``tensors`` is NaN or +-inf.

    A NaN or an infinity anywhere makes the sum of all elements non-finite, so a finite
    sum proves every element finite. A non-finite sum can also come from finite weights
    too large to add up (beyond 3.4e38 in float32), so that case is confirmed tensor by
    tensor."""
    tensors = [t for t in tensors if t.size > 0]
    if not tensors:
        return True
    with paddle.no_grad():
        sums = [t.sum() if t.dtype == paddle.float32 else t.astype("float32").sum()
                for t in tensors]
        total = float(paddle.add_n(sums) if len(sums) > 1 else sums[0])
    if math.isfinite(total):
        return True
    return all(bool(paddle.isfinite(t).all()) for t in tensors)


def first_non_finite(state: Mapping) -> Optional[str]:
    """The name of the first entry of a state dict (tensors or arrays) holding a NaN or
    an infinity, or None."""
    for name, value in state.items():
        if isinstance(value, paddle.Tensor):
            if value.size and not bool(paddle.isfinite(value).all()):
                return name
        else:
            arr = np.asarray(value)
            if arr.dtype.kind in "fc" and arr.size and not np.isfinite(arr).all():
                return name
    return None
