"""Quality figures for 2-D samples, measured against fresh points of the true distribution.

* Sliced Wasserstein-1 (Rabin et al. 2011; Bonneel et al. 2015): the mean over random unit
  directions theta of W1 between the 1-D projections <x, theta>, where W1 in 1-D is the
  mean absolute difference of the quantile functions. Same units as the data; 0 iff the
  distributions agree (as the number of directions grows).
* Energy distance (Szekely & Rizzo 2013): D^2 = 2 E|X-Y| - E|X-X'| - E|Y-Y'|, with the
  within-set means over distinct pairs (unbiased U-statistics), so D^2 is near 0 (and can
  be slightly negative) for two samples of one distribution.
* For Gaussian mixtures with known means and common std sigma:
  - frac_within_3sigma: the fraction of samples whose Euclidean distance to the nearest
    mode is at most 3 sigma ("high-quality" samples, VEEGAN, Srivastava et al. 2017).
    True 2-D samples reach P(chi^2_2 <= 9) = 1 - exp(-4.5) = 0.989.
  - modes_covered: modes holding at least 20% of their expected share (n / K) of
    high-quality samples (PacGAN's rule: 20 of the expected 100 at 2,500 samples, 25 modes).
"""
from __future__ import annotations

import math
from typing import Dict, Optional

import numpy as np

from ..data.toy import mixture_spec, sample_toy

TRUE_FRAC_3SIGMA = 1.0 - math.exp(-4.5)   # P(|N(0, I_2)| <= 3)


def _as_points(x, name: str) -> np.ndarray:
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):
        x = x.numpy()
    x = np.asarray(x, dtype=np.float64)
    x = x.reshape(x.shape[0], -1) if x.ndim > 2 else x
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"{name} must hold at least 2 points as [N, D] (or [N, D, 1, 1]), "
                         f"got shape {x.shape}")
    return x


def _w1_sorted(pa: np.ndarray, pb: np.ndarray) -> np.ndarray:
    """Exact W1 between the empirical distributions of each column of sorted pa [n, P] and
    pb [m, P]: the integral over u of |F^-1(u) - G^-1(u)|, both quantile functions being
    step functions that change at multiples of 1/n and 1/m."""
    n, m = len(pa), len(pb)
    breaks = np.union1d(np.arange(1, n + 1) / n, np.arange(1, m + 1) / m)
    width = np.diff(np.concatenate([[0.0], breaks]))
    mid = breaks - width / 2
    ia = np.minimum((mid * n).astype(np.int64), n - 1)
    ib = np.minimum((mid * m).astype(np.int64), m - 1)
    return (np.abs(pa[ia] - pb[ib]) * width[:, None]).sum(axis=0)


def sliced_wasserstein(a, b, num_projections: int = 512, seed: int = 0) -> float:
    """Sliced W1 between point sets a [N, D] and b [M, D] (Monte Carlo over directions,
    exact W1 along each)."""
    a, b = _as_points(a, "a"), _as_points(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"point sets differ in dimension: {a.shape[1]} and {b.shape[1]}")
    theta = np.random.default_rng(seed).standard_normal((a.shape[1], num_projections))
    theta /= np.linalg.norm(theta, axis=0, keepdims=True)
    return float(np.mean(_w1_sorted(np.sort(a @ theta, axis=0), np.sort(b @ theta, axis=0))))


def _mean_dist(a: np.ndarray, b: np.ndarray, same: bool, chunk: int = 256) -> float:
    """Mean Euclidean distance over all pairs (distinct pairs when ``same``)."""
    total = 0.0
    for i in range(0, len(a), chunk):
        d = a[i:i + chunk, None, :] - b[None, :, :]
        total += float(np.sqrt(np.einsum("ijk,ijk->ij", d, d)).sum())
    pairs = len(a) * (len(b) - 1) if same else len(a) * len(b)
    return total / pairs   # the diagonal (i == j) adds 0 to the sum when same


def energy_distance(a, b) -> float:
    """Squared energy distance D^2 between point sets a and b (U-statistic within sets)."""
    a, b = _as_points(a, "a"), _as_points(b, "b")
    return 2 * _mean_dist(a, b, False) - _mean_dist(a, a, True) - _mean_dist(b, b, True)


def mode_stats(points, means, std: float, min_share: float = 0.2) -> Dict[str, object]:
    """Mode coverage and precision for a Gaussian mixture with ``means`` [K, D] and ``std``."""
    x = _as_points(points, "points")
    means = np.asarray(means, dtype=np.float64)
    d2 = ((x[:, None, :] - means[None, :, :]) ** 2).sum(-1)
    nearest = d2.argmin(axis=1)
    good = np.sqrt(d2[np.arange(len(x)), nearest]) <= 3.0 * std
    counts = np.bincount(nearest[good], minlength=len(means))
    need = min_share * len(x) / len(means)
    return {"modes_total": int(len(means)),
            "modes_covered": int((counts >= need).sum()),
            "frac_within_3sigma": float(good.mean()),
            "mode_counts": counts.tolist()}


def quality(points, dataset: str, num_reference: Optional[int] = None, seed: int = 0) -> dict:
    """All figures of ``points`` against fresh points of the toy set ``dataset``.

    The reference sample (``num_reference`` points, default as many as ``points``) comes
    from the data set's "eval" stream, never the training points.
    """
    x = _as_points(points, "points")
    ref, _ = sample_toy(dataset, num_reference or len(x), seed=seed, split="eval")
    out = {"dataset": dataset, "num_samples": int(len(x)), "num_reference": int(len(ref)),
           "sliced_w1": sliced_wasserstein(x, ref, seed=seed),
           "energy_distance": energy_distance(x, ref)}
    spec = mixture_spec(dataset)
    if spec is not None:
        out.update(mode_stats(x, *spec))
    return out


def requested_mode_stats(points, labels, means, std: float) -> Dict[str, float]:
    """How well class-conditional samples obey their labels, for a mixture whose label is
    the mode index: the fraction whose nearest mode is the requested one, the fraction
    within 3 sigma of the requested mode, and the spread (root-mean-square distance to the
    requested mode's mean; true points have sqrt(2) sigma)."""
    x = _as_points(points, "points")
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    means = np.asarray(means, dtype=np.float64)
    d2 = ((x[:, None, :] - means[None, :, :]) ** 2).sum(-1)
    own = d2[np.arange(len(x)), labels]
    return {"frac_in_requested_mode": float((d2.argmin(axis=1) == labels).mean()),
            "frac_within_3sigma_of_requested": float((np.sqrt(own) <= 3.0 * std).mean()),
            "spread_rms": float(np.sqrt(own.mean())), "true_spread_rms": float(math.sqrt(2) * std)}
