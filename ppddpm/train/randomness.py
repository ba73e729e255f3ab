"""Per-example randomness of a training iteration.

Example j of the global batch of iteration k draws its timestep and noise from its own
generator PCG64(SeedSequence([seed, k, j])). The update therefore does not depend on how
the global batch is split over ranks or gradient-accumulation steps: 2 ranks on half
batches compute what 1 process computes on the full batch, and a run can resume on a
different number of GPUs.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
import paddle


def iteration_seed(seed: int, rank: int, iteration: int) -> int:
    """A well-mixed 31-bit seed for one iteration of one rank (dropout masks)."""
    return int(np.random.SeedSequence([seed, rank, iteration]).generate_state(1)[0] >> 1)


def example_draws(seed: int, iteration: int, indices: Sequence[int],
                  shape: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
    """(u, noise): a uniform in [0, 1) per example (to pick its timestep) and its
    standard-normal noise of ``shape``, float32."""
    u = np.empty(len(indices), dtype=np.float64)
    noise = np.empty((len(indices),) + tuple(shape), dtype=np.float32)
    for row, j in enumerate(indices):
        rng = np.random.default_rng([int(seed), int(iteration), int(j)])
        u[row] = rng.random()
        noise[row] = rng.standard_normal(tuple(shape), dtype=np.float32)
    return u, noise


def uniform_timesteps(u: np.ndarray, num_timesteps: int) -> Tuple[paddle.Tensor, None]:
    """t = floor(u T): uniform over 0..T-1; no importance weights."""
    t = np.minimum((u * num_timesteps).astype(np.int64), num_timesteps - 1)
    return paddle.to_tensor(t), None
