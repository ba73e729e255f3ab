"""Gathering a schedule table at a batch of timesteps, and the per-example mean."""
from __future__ import annotations

from typing import Sequence

import paddle


def extract(table: paddle.Tensor, t: paddle.Tensor, x_shape: Sequence[int]) -> paddle.Tensor:
    """Gather ``table[t]`` and reshape to [N, 1, 1, ...] to broadcast against ``x_shape``."""
    assert len(t.shape) == 1, f"t must be 1-D, got shape {t.shape}"
    assert t.shape[0] == x_shape[0], f"t has {t.shape[0]} entries for a batch of {x_shape[0]}"
    out = paddle.gather(table, t)
    return out.reshape([t.shape[0]] + [1] * (len(x_shape) - 1))


def mean_flat(x: paddle.Tensor) -> paddle.Tensor:
    return x.mean(axis=list(range(1, len(x.shape))))
