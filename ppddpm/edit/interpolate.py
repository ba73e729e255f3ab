"""Interpolation between latents (DDIM sec. 5.3): x_T(alpha) by spherical linear
interpolation (Shoemake 1985), as the DDIM paper does, since x_T of a Gaussian prior lies near
a sphere of radius sqrt(D) where straight lines between two points cut inside it:

  slerp(z0, z1; alpha) = sin((1 - alpha) theta) / sin(theta) z0 + sin(alpha theta) / sin(theta) z1,
  theta = arccos(<z0, z1> / (|z0| |z1|)).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import paddle

from ..samplers.noise import NoiseStream


def slerp(z0, z1, alpha: float) -> np.ndarray:
    """The point at ``alpha`` in [0, 1] on the great circle from ``z0`` to ``z1`` (any shape,
    float64); alpha 0 and 1 give the end points exactly, parallel ends a straight line."""
    a = np.asarray(z0, dtype=np.float64)
    b = np.asarray(z1, dtype=np.float64)
    cos = float(np.sum(a * b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    theta = float(np.arccos(np.clip(cos, -1.0, 1.0)))
    if alpha == 0.0:
        return a.copy()
    if alpha == 1.0:
        return b.copy()
    if np.sin(theta) < 1e-8:
        return (1.0 - alpha) * a + alpha * b
    return (np.sin((1.0 - alpha) * theta) * a + np.sin(alpha * theta) * b) / np.sin(theta)


def seed_latent(seed: int, shape: Sequence[int], index: int = 0) -> paddle.Tensor:
    """x_T of image ``index`` of a run with ``seed`` ([1, C, H, W]): the latent that
    ``--mode denoise --sample_seed seed`` starts that image from."""
    return NoiseStream(seed, [index], list(shape), max_draws=1).next()


def interpolation_latents(z0, z1, num_frames: int) -> np.ndarray:
    """``num_frames`` latents from z0 to z1 (both ends included), float32 [F, ...]."""
    if num_frames < 2:
        raise ValueError(f"an interpolation needs at least 2 frames, got {num_frames}")
    z0, z1 = np.asarray(z0), np.asarray(z1)
    return np.stack([slerp(z0, z1, a) for a in np.linspace(0.0, 1.0, num_frames)]
                    ).astype(np.float32)
