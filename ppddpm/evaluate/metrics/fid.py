"""Fréchet Inception Distance (Heusel et al. 2017), computed as pytorch-fid does.

FID = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}), the Fréchet (2-Wasserstein) distance
between N(mu1, S1) and N(mu2, S2) fitted to Inception pool3 features. Statistics are
float64; the matrix square root is scipy.linalg.sqrtm, as in pytorch-fid and the TTUR code.
"""
from __future__ import annotations

import warnings
from typing import Tuple

import numpy as np
from scipy import linalg

from ...errors import PPDDPMError


class MetricError(PPDDPMError, ValueError):
    """A metric cannot be computed from the given data."""


def feature_statistics(features: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) in float64 of [N, D] features; the covariance uses N-1 (np.cov)."""
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise MetricError(f"need at least 2 feature vectors [N, D] for FID statistics, got "
                          f"shape {list(feats.shape)}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def _sqrtm(m: np.ndarray) -> np.ndarray:
    """scipy.linalg.sqrtm without its singular-matrix notices (finiteness is checked by the
    caller, as pytorch-fid's disp=False did); SciPy >= 1.16 deprecates ``disp``, and some
    versions return (root, error) while others return the root alone."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = linalg.sqrtm(m)
    return out[0] if isinstance(out, tuple) else out


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """The Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    As pytorch-fid: if sqrtm(S1 S2) is not finite (a singular product), ``eps`` is added to
    both diagonals and it is recomputed; a complex result whose diagonal has an imaginary
    part above 1e-3 is an error, a smaller one is numerical noise and is dropped.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise MetricError(f"FID statistics do not match: means {list(mu1.shape)} and "
                          f"{list(mu2.shape)}, covariances {list(s1.shape)} and {list(s2.shape)} "
                          "(were both made with the same Inception layer?)")
    diff = mu1 - mu2
    covmean = _sqrtm(s1.dot(s2))
    if not np.isfinite(covmean).all():
        warnings.warn(f"FID: the covariance product is singular; adding {eps} to the "
                      "diagonals (as pytorch-fid does)", RuntimeWarning, stacklevel=2)
        offset = np.eye(s1.shape[0]) * eps
        covmean = _sqrtm((s1 + offset).dot(s2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise MetricError(f"FID: the matrix square root has a large imaginary component "
                              f"({np.max(np.abs(covmean.imag)):.3g}); the statistics are broken "
                              "(too few samples, or NaN/inf features)")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
