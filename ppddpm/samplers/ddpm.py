"""Ancestral sampling (Ho et al. 2020, Algorithm 2) with the diffusion's variance type."""
from __future__ import annotations

from typing import Optional

import paddle

from ..diffusion import GaussianDiffusion, MeanType
from .base import Sampler
from .classifier_guidance import classifier_gradient
from .threshold import limit_x0


class DDPMSampler(Sampler):
    """x_{t-1} = mu_theta(x_t, t) + sigma_t z, with no noise added at the last step.

    Pass a respaced diffusion (``ppddpm.respace``) to sample on a subsequence.
    """

    def __init__(self, diffusion: GaussianDiffusion, clip_denoised: bool = True,
                 model_kwargs=None, threshold: Optional[float] = None):
        super().__init__(clip_denoised, model_kwargs, threshold=threshold)
        self.diffusion = diffusion
        T = diffusion.num_timesteps
        self.steps = [(t, t - 1) for t in range(T - 1, -1, -1)]

    def uses_noise(self, t: int, t_prev: int) -> bool:
        return t_prev >= 0

    def step(self, model, x, t, t_prev, noise):
        t_vec = paddle.full([x.shape[0]], t, dtype="int64")
        thresholded = self.threshold is not None
        out = self.diffusion.p_mean_variance(model, x, t_vec, model_kwargs=self.model_kwargs,
                                             clip_denoised=self.clip_denoised and not thresholded)
        mean = out["mean"]
        if thresholded:   # Imagen's thresholding of x0, then the posterior mean from it (eq. 7)
            out["pred_x0"] = limit_x0(out["pred_x0"], model, False, self.threshold)
            if self.diffusion.mean_type is not MeanType.XPREV:
                mean = self.diffusion.q_posterior_mean_variance(out["pred_x0"], x, t_vec)[0]
        grad = classifier_gradient(model, self.diffusion, x, t_vec)
        if grad is not None:   # classifier guidance, Dhariwal & Nichol Alg. 1: mu + Sigma g
            mean = mean + out["variance"] * grad
        if t_prev < 0:  # t == 0: return the mean (eq. 11 with z = 0)
            return mean, out["pred_x0"]
        return mean + paddle.exp(0.5 * out["log_variance"]) * noise, out["pred_x0"]
