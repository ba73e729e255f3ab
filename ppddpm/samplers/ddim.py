"""DDIM sampling (Song et al. 2021), eq. 12 for any eta, on a skip subsequence."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..diffusion import GaussianDiffusion
from .base import Sampler
from .continuous import model_predictions
from .spacing import ddim_timesteps, timestep_grid

__all__ = ["DDIMSampler", "ddim_timesteps"]


class DDIMSampler(Sampler):
    """x_{t'} = sqrt(abar_t') x0_hat + sqrt(1 - abar_t' - sigma^2) eps_hat + sigma z   (eq. 12)

    with sigma = eta sqrt((1 - abar_t')/(1 - abar_t)) sqrt(1 - abar_t / abar_t')   (eq. 16)
    and abar_{-1} = 1, so the last step returns x0_hat.

    x0_hat is clipped with ``clip_denoised`` (or thresholded, ``threshold``). eps_hat is the
    model's own noise prediction in unguided runs (diffusers' DDIMScheduler with
    ``use_clipped_model_output=False``; the DDIM paper's code does not clip at all) and is
    re-derived from the clipped x0_hat in guided ones (improved-diffusion's DDIM);
    ``clipped_eps`` True or False fixes either form. The two agree whenever the clip does
    not bite, e.g. for an exact model of data inside the range. ``skip`` is any spacing of
    ``spacing.py`` (uniform and quadratic are the paper's); DDIM keeps the paper's grids,
    whose last step evaluates t = 0.
    """

    def __init__(self, diffusion: GaussianDiffusion, num_steps: Optional[int] = None,
                 stride: Optional[int] = None, eta: float = 0.0, skip: str = "uniform",
                 timesteps: Optional[Sequence[int]] = None, clip_denoised: bool = True,
                 model_kwargs=None, clipped_eps: Optional[bool] = None,
                 threshold: Optional[float] = None):
        super().__init__(clip_denoised, model_kwargs, clipped_eps, threshold)
        if eta < 0:
            raise ValueError(f"eta must be >= 0, got {eta}")
        self.diffusion = diffusion
        self.eta = float(eta)
        seq = sorted(int(t) for t in timesteps) if timesteps is not None \
            else timestep_grid(diffusion.alphas_cumprod, num_steps, skip, stride)
        prev = [-1] + seq[:-1]
        self.steps = list(zip(seq[::-1], prev[::-1]))
        # alpha-bar with abar[-1] = 1 stored at index 0, so t_prev = -1 needs no special case.
        self._abar = np.append(1.0, diffusion.alphas_cumprod)

    def _sigma(self, t: int, t_prev: int) -> float:
        """eq. 16"""
        abar_t, abar_prev = float(self._abar[t + 1]), float(self._abar[t_prev + 1])
        return self.eta * np.sqrt((1 - abar_prev) / (1 - abar_t)) * np.sqrt(1 - abar_t / abar_prev)

    def uses_noise(self, t: int, t_prev: int) -> bool:
        return self._sigma(t, t_prev) > 0

    def step(self, model, x, t, t_prev, noise):
        pred_x0, eps = model_predictions(self.diffusion, model, x, t, self.clip_denoised,
                                         self.eps_from_clipped_x0, self.model_kwargs,
                                         self.threshold)
        abar_prev = float(self._abar[t_prev + 1])
        sigma = self._sigma(t, t_prev)
        dir_coef = np.sqrt(max(1 - abar_prev - sigma ** 2, 0.0))
        x_prev = np.sqrt(abar_prev) * pred_x0 + dir_coef * eps
        if sigma > 0:
            x_prev = x_prev + sigma * noise
        return x_prev, pred_x0
