"""Improved precision and recall (Kynkäänniemi et al. 2019), k = 3.

Each set's manifold is the union of balls around its points, the radius of a point being
the distance to its k-th nearest neighbour in the same set (the point itself excluded).
Precision is the share of generated points inside the real manifold, recall the share of
real points inside the generated one. As in the authors' code, squared Euclidean distances
|u|^2 - 2 u.v + |v|^2 (clamped at 0) are compared with ``<=``, and distances are computed in
blocks of rows so that 50k x 50k never sits in memory at once (a block of rows against all
columns is at most ``block_bytes``). Features are centred on the real mean first, which
changes no distance but reduces float32 cancellation.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from .fid import MetricError

DEFAULT_BLOCK_BYTES = 256 * 2 ** 20


def _rows_per_block(num_cols: int, block_bytes: int) -> int:
    return max(1, int(block_bytes // (4 * max(num_cols, 1))))


def _sq_dists(u: np.ndarray, v: np.ndarray, v_norms: np.ndarray) -> np.ndarray:
    u_norms = np.einsum("ij,ij->i", u, u)[:, None]
    d = u_norms - 2.0 * (u @ v.T) + v_norms[None, :]
    return np.maximum(d, 0.0, out=d)


def knn_radii(features: np.ndarray, k: int = 3, block_bytes: int = DEFAULT_BLOCK_BYTES) -> np.ndarray:
    """Squared distance from each point to its k-th nearest other point."""
    x = np.ascontiguousarray(features, dtype=np.float32)
    n = x.shape[0]
    if n <= k:
        raise MetricError(f"precision/recall with k={k} needs more than {k} points per set, got {n}")
    norms = np.einsum("ij,ij->i", x, x)
    radii = np.empty(n, dtype=np.float32)
    step = _rows_per_block(n, block_bytes)
    for start in range(0, n, step):
        d = _sq_dists(x[start:start + step], x, norms)
        # Index k of the sorted row: index 0 is the point itself (distance 0).
        radii[start:start + step] = np.partition(d, k, axis=1)[:, k]
    return radii


def in_manifold(points: np.ndarray, manifold: np.ndarray, radii: np.ndarray,
                block_bytes: int = DEFAULT_BLOCK_BYTES) -> np.ndarray:
    """For each point, whether it lies within radius of some manifold point (bool [N])."""
    p = np.ascontiguousarray(points, dtype=np.float32)
    m = np.ascontiguousarray(manifold, dtype=np.float32)
    norms = np.einsum("ij,ij->i", m, m)
    out = np.empty(p.shape[0], dtype=bool)
    step = _rows_per_block(m.shape[0], block_bytes)
    for start in range(0, p.shape[0], step):
        d = _sq_dists(p[start:start + step], m, norms)
        out[start:start + step] = (d <= radii[None, :]).any(axis=1)
    return out


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3,
                     block_bytes: int = DEFAULT_BLOCK_BYTES) -> Tuple[float, float]:
    """(precision, recall) of ``fake`` features against ``real`` features, both [N, D]."""
    real, fake = np.asarray(real), np.asarray(fake)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise MetricError(f"precision/recall needs [N, D] features of one width, got "
                          f"{list(real.shape)} and {list(fake.shape)}")
    # Distances do not change under a shift; centring on the real mean keeps |u|^2 small
    # so that |u|^2 - 2 u.v + |v|^2 loses less to float32 cancellation.
    centre = real.mean(axis=0, dtype=np.float64)
    real = (real - centre).astype(np.float32)
    fake = (fake - centre).astype(np.float32)
    real_radii = knn_radii(real, k, block_bytes)
    fake_radii = knn_radii(fake, k, block_bytes)
    precision = in_manifold(fake, real, real_radii, block_bytes).mean()
    recall = in_manifold(real, fake, fake_radii, block_bytes).mean()
    return float(precision), float(recall)
