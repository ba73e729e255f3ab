"""Per-example randomness of a training iteration.

Example j of the global batch of iteration k draws its timestep and noise from its own
counter-based stream: value c of the stream is splitmix64 (Steele, Lea & Flood 2014) at
state key(seed, k, j) + c * golden-gamma, where the key chains splitmix64's bijective
finaliser over seed, k and j. The update therefore does not depend on how the global
batch is split over ranks or gradient-accumulation steps: 2 ranks on half batches compute
what 1 process computes on the full batch, and a run can resume on a different number of
GPUs. The streams are computed for the whole batch at once in numpy (~0.3 ms for 1024
examples); one numpy Generator per example cost ~20 us each, which doubled the time of a
toy-data training step.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
import paddle


def iteration_seed(seed: int, rank: int, iteration: int) -> int:
    """A well-mixed 31-bit seed for one iteration of one rank (dropout masks)."""
    return int(np.random.SeedSequence([seed, rank, iteration]).generate_state(1)[0] >> 1)


_GAMMA = np.uint64(0x9E3779B97F4A7C15)                       # splitmix64's increment
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's output function: a bijection of uint64 with good avalanche."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def _stream_bits(seed: int, iteration: int, indices: Sequence[int], count: int,
                 start: int = 1) -> np.ndarray:
    """uint64 [len(indices), count]: values start..start+count-1 of each example's stream."""
    with np.errstate(over="ignore"):   # uint64 arithmetic wraps modulo 2^64 on purpose
        j = np.asarray(list(indices), dtype=np.uint64)
        key = _mix(np.full(j.shape, np.uint64(int(seed) % 2 ** 64)) + _GAMMA)
        key = _mix(key ^ np.uint64(int(iteration) % 2 ** 64))
        key = _mix(_mix(key + _GAMMA) ^ j)
        c = np.arange(start, start + count, dtype=np.uint64)
        return _mix(key[:, None] + c[None, :] * _GAMMA)


def example_draws(seed: int, iteration: int, indices: Sequence[int],
                  shape: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
    """(u, noise): a uniform in [0, 1) per example (to pick its timestep) and its
    standard-normal noise of ``shape``, float32 (Box-Muller on the stream's next values)."""
    n, size = len(indices), int(np.prod(tuple(shape), dtype=np.int64))
    pairs = (size + 1) // 2
    u = (_stream_bits(seed, iteration, indices, 1 + 2 * pairs) >> np.uint64(11)) \
        .astype(np.float64) * (1.0 / (1 << 53))                     # 53-bit uniforms in [0, 1)
    radius = np.sqrt(-2.0 * np.log1p(-u[:, 1:1 + pairs]))          # 1 - u is in (0, 1]
    angle = (2.0 * np.pi) * u[:, 1 + pairs:]
    z = np.concatenate([radius * np.cos(angle), radius * np.sin(angle)], axis=1)[:, :size]
    return u[:, 0].copy(), z.astype(np.float32).reshape((n,) + tuple(shape))


def _uniforms(bits: np.ndarray) -> np.ndarray:
    return (bits >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))  # 53-bit, in [0, 1)


def label_dropout_uniform(seed: int, iteration: int, indices: Sequence[int]) -> np.ndarray:
    """A uniform in [0, 1) per example that decides whether its class label is dropped
    (classifier-free guidance training). It is value 0 of the example's stream, which
    ``example_draws`` never reads (it starts at 1), so adding labels leaves every timestep
    and noise draw, and therefore unconditional runs, bit for bit as they were."""
    return _uniforms(_stream_bits(seed, iteration, indices, 1, start=0))[:, 0]


def drop_labels(labels: np.ndarray, u: np.ndarray, p_uncond: float, null_label: int) -> np.ndarray:
    """Labels with those of the examples where u < p_uncond replaced by ``null_label``
    (Ho & Salimans 2022, Algorithm 1)."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    return np.where(np.asarray(u) < p_uncond, np.int64(null_label), labels)


def uniform_timesteps(u: np.ndarray, num_timesteps: int) -> Tuple[paddle.Tensor, None]:
    """t = floor(u T): uniform over 0..T-1; no importance weights."""
    t = np.minimum((u * num_timesteps).astype(np.int64), num_timesteps - 1)
    return paddle.to_tensor(t), None
