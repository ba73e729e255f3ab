"""Timestep grids: which integer timesteps a sampler visits at a given number of steps.

Every grid is an ascending list of distinct integers in [0, T-1]; the sampler walks it
from the largest down and ends with a step to t = -1 (alpha-bar 1, sigma 0: the data).

  uniform    0, s, 2s, ... with s = T // n (DDIM sec. 4.2; diffusers' "leading" spacing
             with steps_offset 0). The noisiest step is T - s, not T - 1.
  quadratic  (linspace(0, sqrt(0.8 T), n))^2, the DDIM paper's CIFAR-10 choice (rounded
             down; ddim_timesteps may then return fewer than n, here equal points are pushed apart).
  linspace   round(linspace(0, T-1, n)): from T-1 down to 0 (diffusers' "linspace").
  trailing   round(arange(T, 0, -T/n)) - 1: T-1, T-1-T/n, ... (diffusers' "trailing",
             Lin et al. 2024 table 2); the smallest step is T/n - 1, not 0.
  logsnr     uniform in lambda = log(alpha/sigma) from lambda_{T-1} to lambda_0 (DPM-Solver
             sec. 3.3 for low-resolution images), each point rounded to the nearest integer t.

The ODE solvers never evaluate the network at t = 0 (x0 = x_t there, and the network tells
nothing): ``solver_grid`` takes a grid that ends at t = 0 with one point more and drops the
0, so the last step goes from the smallest point straight to the data, first order. For
uniform, linspace and trailing these are exactly diffusers' DPMSolverMultistepScheduler and
UniPCMultistepScheduler timesteps for "leading", "linspace" and "trailing".

Rounding can make two grid points meet where lambda changes fast (near t = 0); they are
then pushed apart by one step, so a grid always has exactly n points (n <= T).
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np

from ..config.names import SPACINGS


def ddim_timesteps(T: int, num_steps: Optional[int] = None, stride: Optional[int] = None,
                   skip: str = "uniform") -> List[int]:
    """The ascending subsequence tau of DDIM sec. 4.2 / appendix D.2.

    uniform: 0, s, 2s, ... (stride s, or s = T // num_steps);
    quadratic: (linspace(0, sqrt(0.8 T), num_steps))^2, as in the DDIM paper.
    """
    if (num_steps is None) == (stride is None):
        raise ValueError("give exactly one of num_steps and stride")
    if stride is not None:
        if not 1 <= stride <= T:
            raise ValueError(f"stride must be in [1, {T}], got {stride}")
        num_steps = len(range(0, T, stride))
    if not 1 <= num_steps <= T:
        raise ValueError(f"num_steps must be in [1, {T}], got {num_steps}")
    if skip == "uniform":
        step = stride if stride is not None else T // num_steps
        seq = list(range(0, T, step))[:num_steps]
    elif skip == "quadratic":
        seq = sorted({int(s) for s in np.linspace(0, np.sqrt(T * 0.8), num_steps) ** 2})
    else:
        raise ValueError(f"unknown skip {skip!r}; choose 'uniform' or 'quadratic'")
    return seq


def _distinct(points: np.ndarray, T: int, low: int = 0) -> List[int]:
    """Round to integers in [low, T-1] and push equal neighbours apart (keeps the count)."""
    seq = np.clip(np.rint(np.sort(points)), low, T - 1).astype(np.int64)
    for i in range(1, len(seq)):          # upward: strictly increasing
        seq[i] = max(seq[i], seq[i - 1] + 1)
    for i in range(len(seq) - 1, -1, -1):  # downward: within [.., T-1]
        top = T - 1 if i == len(seq) - 1 else seq[i + 1] - 1
        seq[i] = min(seq[i], top)
    return [int(s) for s in seq]


def log_snr(alphas_cumprod) -> np.ndarray:
    """lambda_t = log alpha_t - log sigma_t = 0.5 log(abar_t / (1 - abar_t)), float64."""
    abar = np.asarray(alphas_cumprod, dtype=np.float64)
    return 0.5 * (np.log(abar) - np.log1p(-abar))


def timestep_grid(alphas_cumprod, num_steps: Optional[int] = None, spacing: str = "uniform",
                  stride: Optional[int] = None) -> List[int]:
    """The ascending grid of ``num_steps`` timesteps (or DDIM's ``stride``) for ``spacing``."""
    T = len(alphas_cumprod)
    if spacing == "uniform" or (spacing == "quadratic" and stride is not None):
        return ddim_timesteps(T, num_steps, stride, spacing)
    if spacing not in SPACINGS:
        raise ValueError(f"unknown spacing {spacing!r}; choose one of {list(SPACINGS)}")
    if stride is not None:      # DDIM's --stride s means len(range(0, T, s)) steps
        if not 1 <= stride <= T:
            raise ValueError(f"stride must be in [1, {T}], got {stride}")
        num_steps = len(range(0, T, stride))
    if num_steps is None or not 1 <= num_steps <= T:
        raise ValueError(f"num_steps must be in [1, {T}], got {num_steps}")
    n = num_steps
    if spacing == "quadratic":   # ddim_timesteps' points, but always n distinct steps
        points = np.floor(np.linspace(0, np.sqrt(T * 0.8), n) ** 2)
    elif spacing == "linspace":
        points = np.linspace(0, T - 1, n)
    elif spacing == "trailing":
        points = np.round(np.arange(T, 0, -T / n))[:n] - 1
    else:
        lam = log_snr(alphas_cumprod)          # decreasing in t
        targets = np.linspace(lam[-1], lam[0], n)
        # t(lambda) by linear interpolation between integer steps (np.interp wants ascending x)
        points = np.interp(targets, lam[::-1], np.arange(T, dtype=np.float64)[::-1])
    return _distinct(points, T)


def solver_grid(alphas_cumprod, num_steps: Optional[int] = None, spacing: str = "logsnr",
                stride: Optional[int] = None) -> List[int]:
    """The ascending grid of an ODE solver: ``num_steps`` timesteps in [1, T-1], none at 0.

    A grid that ends at t = 0 (all but trailing) is built for num_steps + 1 points and its
    0 dropped, as diffusers' multistep schedulers do for "leading" (uniform: multiples of
    T // (n + 1)) and "linspace"; trailing's smallest point is T/n - 1 already. ``stride`` s
    means len(range(0, T, s)) steps, as for DDIM.
    """
    T = len(alphas_cumprod)
    if stride is not None and num_steps is None:
        if not 1 <= stride <= T:
            raise ValueError(f"stride must be in [1, {T}], got {stride}")
        num_steps = len(range(0, T, stride))
    if num_steps is None or not 1 <= num_steps <= T - 1:
        raise ValueError(f"num_steps must be in [1, {T - 1}] for an ODE solver (it never "
                         f"evaluates t = 0), got {num_steps}")
    if spacing == "trailing":   # above 0 unless n is near T, where rounding pushes it to 0
        return _distinct(np.round(np.arange(T, 0, -T / num_steps))[:num_steps] - 1, T, low=1)
    grid = timestep_grid(alphas_cumprod, num_steps + 1, spacing)
    assert grid[0] == 0, grid
    return grid[1:]
