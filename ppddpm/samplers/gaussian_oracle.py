"""The exact model of Gaussian data N(mu, Sigma) with any covariance, and the closed forms
it is tested against (ppddpm/edit: encoding, RePaint).

With x_t = sqrt(abar) x0 + sqrt(1 - abar) eps, x_t ~ N(sqrt(abar) mu, C_t) with
C_t = abar Sigma + (1 - abar) I, so its score is -C_t^-1 (x_t - sqrt(abar) mu) and

  eps*(x_t) = E[eps | x_t] = sqrt(1 - abar) C_t^-1 (x_t - sqrt(abar) mu).

Given the coordinates k of x0 (the known ones), the others u are Gaussian with
  mean  mu_u + Sigma_uk Sigma_kk^-1 (x_k - mu_k),   covariance  Sigma_uu - Sigma_uk Sigma_kk^-1 Sigma_ku.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import paddle


class GaussianOracle:
    """``model(x, t)`` for points of dimension D as [N, D, 1, 1] (or any [N, ...] of D
    numbers); ``alphas_cumprod`` is the table of the timesteps it is called with."""

    def __init__(self, mean, cov, alphas_cumprod):
        self.mean = np.asarray(mean, dtype=np.float64).ravel()
        self.cov = np.asarray(cov, dtype=np.float64)
        if self.cov.shape != (self.dim, self.dim):
            raise ValueError(f"cov must be {self.dim}x{self.dim}, got {self.cov.shape}")
        self.abar = np.asarray(alphas_cumprod, dtype=np.float64)

    @property
    def dim(self) -> int:
        return len(self.mean)

    def eps_np(self, x: np.ndarray, abar: np.ndarray) -> np.ndarray:
        """E[eps | x_t = x] for x [N, D] and alpha-bar [N], float64."""
        out = np.empty_like(x, dtype=np.float64)
        for a in np.unique(abar):
            rows = abar == a
            c_t = a * self.cov + (1.0 - a) * np.eye(self.dim)
            diff = x[rows] - np.sqrt(a) * self.mean
            out[rows] = np.sqrt(1.0 - a) * np.linalg.solve(c_t, diff.T).T
        return out

    def __call__(self, x, t, **unused):
        shape = x.shape
        pts = x.numpy().reshape(shape[0], -1).astype(np.float64)
        out = self.eps_np(pts, self.abar[t.numpy().astype(np.int64)])
        return paddle.to_tensor(out.astype(np.float32).reshape(shape))

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` data points [n, D] (float64)."""
        return np.random.default_rng(seed).multivariate_normal(self.mean, self.cov, size=n)

    def conditional(self, known: np.ndarray, values: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(mean, covariance) of the coordinates not in the boolean mask ``known``, given
        x0[known] = ``values``."""
        k, u = np.asarray(known, dtype=bool), ~np.asarray(known, dtype=bool)
        s_uk = self.cov[np.ix_(u, k)]
        gain = s_uk @ np.linalg.inv(self.cov[np.ix_(k, k)])
        mean = self.mean[u] + gain @ (np.asarray(values, dtype=np.float64) - self.mean[k])
        return mean, self.cov[np.ix_(u, u)] - gain @ s_uk.T
