"""Kernel Inception Distance (Bińkowski et al. 2018).

The unbiased estimate of MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3,
averaged over ``num_subsets`` random subsets of ``subset_size`` points from each set
(100 x 1000 as in the paper and torch-fidelity); returns (mean, std over subsets).
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from .fid import MetricError


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """MMD^2_u = mean_{i!=j} k(x_i,x_j) + mean_{i!=j} k(y_i,y_j) - 2 mean_{i,j} k(x_i,y_j)."""
    m, n = x.shape[0], y.shape[0]
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def kernel_inception_distance(real: np.ndarray, fake: np.ndarray, num_subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0) -> Tuple[float, float]:
    real = np.asarray(real, dtype=np.float64)
    fake = np.asarray(fake, dtype=np.float64)
    size = min(subset_size, real.shape[0], fake.shape[0])
    if size < 2:
        raise MetricError(f"KID needs at least 2 points per set, got {real.shape[0]} and {fake.shape[0]}")
    rng = np.random.RandomState(seed)
    vals = []
    for _ in range(num_subsets):
        xs = real[rng.choice(real.shape[0], size, replace=False)]
        ys = fake[rng.choice(fake.shape[0], size, replace=False)]
        vals.append(mmd2_unbiased(xs, ys))
    return float(np.mean(vals)), float(np.std(vals))
