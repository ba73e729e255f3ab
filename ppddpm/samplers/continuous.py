"""Discrete DDPM timesteps as points of the continuous-time diffusion, for the ODE solvers.

DPM-Solver (Lu et al. 2022, sec. 3.4 and app. D) treats a model trained on N discrete steps
as a continuous-time one by t_n = (n + 1) / N and a piecewise-linear log alpha(t) through the
points log alpha_{t_n} = 0.5 log abar_n. Every grid here holds integer n only (the model is
always called with the integers it was trained on), so alpha, sigma and
lambda = log alpha - log sigma at grid points are the table values themselves, with no
interpolation; the interpolation matters only for placing a log-SNR grid (spacing.py).
The end point n = -1 is the data: alpha = 1, sigma = 0, lambda = +inf.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import paddle

from ..diffusion import MeanType
from .classifier_guidance import classifier_gradient
from .threshold import limit_x0


class LogSNRTable:
    """alpha_t = sqrt(abar_t), sigma_t = sqrt(1 - abar_t), lambda_t for t in -1 .. T-1."""

    def __init__(self, alphas_cumprod):
        abar = np.append(1.0, np.asarray(alphas_cumprod, dtype=np.float64))  # index t + 1
        self._abar = abar
        self._one_minus = np.append(0.0, -np.expm1(np.log(abar[1:])))  # 1 - abar, in float64

    def alpha(self, t: int) -> float:
        return math.sqrt(self._abar[t + 1])

    def sigma(self, t: int) -> float:
        return math.sqrt(self._one_minus[t + 1])

    def lam(self, t: int) -> float:
        """log alpha - log sigma; +inf at t = -1."""
        if t < 0:
            return math.inf
        return 0.5 * (math.log(self._abar[t + 1]) - math.log(self._one_minus[t + 1]))


def model_predictions(diffusion, model, x, t: int, clip_denoised: bool, clipped_eps: bool,
                      model_kwargs=None, threshold: Optional[float] = None):
    """(x0_hat, eps_hat) of the model at integer timestep ``t``, for any mean type.

    x0_hat is clipped to the model's data range when ``clip_denoised``, or dynamically
    thresholded at quantile ``threshold`` (threshold.py). eps_hat is the model's own noise
    prediction (for x0 and xprev models: the one implied by the raw, unclipped x0), unless
    ``clipped_eps``, which re-derives it from the limited x0 as improved-diffusion's DDIM
    does. With learned variances only the mean part is used.
    A classifier-guided ``model`` (classifier_guidance.py) has its eps replaced by
    eps - sqrt(1 - abar_t) g and x0 re-derived from it (Dhariwal & Nichol Alg. 2), before
    the clipping.
    """
    t_vec = paddle.full([x.shape[0]], t, dtype="int64")
    out = diffusion.p_mean_variance(model, x, t_vec, clip_denoised=False,
                                    model_kwargs=model_kwargs, posterior=False)
    x0 = out["pred_x0"]
    if diffusion.mean_type is MeanType.EPS:
        eps = out["model_output"]
    else:
        eps = diffusion.predict_eps_from_x0(x, t_vec, x0)
    grad = classifier_gradient(model, diffusion, x, t_vec)
    if grad is not None:
        eps = eps - float(diffusion.sqrt_one_minus_alphas_cumprod[t]) * grad
        x0 = diffusion.predict_x0_from_eps(x, t_vec, eps)
    if clip_denoised or threshold is not None:
        x0 = limit_x0(x0, model, clip_denoised, threshold)
        if clipped_eps:
            eps = diffusion.predict_eps_from_x0(x, t_vec, x0)
    return x0, eps
