"""What the edits share: the model's data range, the forward process q(x_t | x_0) at one
timestep, and a sampler restricted to some of its own steps."""
from __future__ import annotations

import copy
import math
from typing import Sequence, Tuple

import numpy as np
import paddle

from ..samplers.base import Sampler


def to_model_range(x: paddle.Tensor, model) -> paddle.Tensor:
    """Images in [-1, 1] mapped into the model's data range (``model.data_range``); the
    inverse of ``samplers.to_unit_range``."""
    lo, hi = getattr(model, "data_range", (-1.0, 1.0))
    if (lo, hi) == (-1.0, 1.0):
        return x
    return (x + 1.0) / 2.0 * (hi - lo) + lo


def as_tensor(x) -> paddle.Tensor:
    """A float32 tensor of ``x`` (a tensor or an array)."""
    if isinstance(x, paddle.Tensor):
        return x.astype("float32")
    return paddle.to_tensor(np.asarray(x, dtype=np.float32))


def abar_table(sampler: Sampler) -> np.ndarray:
    """alpha-bar of the sampler's chain with abar_{-1} = 1 at index 0 (index t + 1)."""
    return np.append(1.0, np.asarray(sampler.diffusion.alphas_cumprod, dtype=np.float64))


def q_sample(abar: float, x0: paddle.Tensor, eps: paddle.Tensor) -> paddle.Tensor:
    """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps (DDPM eq. 4)."""
    if abar >= 1.0:
        return x0
    return math.sqrt(abar) * x0 + math.sqrt(1.0 - abar) * eps


def with_steps(sampler: Sampler, steps: Sequence[Tuple[int, int]]) -> Sampler:
    """A shallow copy of ``sampler`` walking only ``steps`` (some of its own (t, t_prev)
    pairs, noisiest first); the sampler itself is left as it was."""
    part = copy.copy(sampler)
    part.steps = list(steps)
    part.reset()
    return part
