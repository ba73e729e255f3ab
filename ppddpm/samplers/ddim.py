"""DDIM sampling (Song et al. 2021), eq. 12 for any eta, on a skip subsequence."""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
import paddle

from ..diffusion import GaussianDiffusion
from .base import Sampler


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


class DDIMSampler(Sampler):
    """x_{t'} = sqrt(abar_t') x0_hat + sqrt(1 - abar_t' - sigma^2) eps_hat + sigma z   (eq. 12)

    with sigma = eta sqrt((1 - abar_t')/(1 - abar_t)) sqrt(1 - abar_t / abar_t')   (eq. 16)
    and abar_{-1} = 1, so the last step returns x0_hat.
    """

    def __init__(self, diffusion: GaussianDiffusion, num_steps: Optional[int] = None,
                 stride: Optional[int] = None, eta: float = 0.0, skip: str = "uniform",
                 timesteps: Optional[Sequence[int]] = None, clip_denoised: bool = True,
                 model_kwargs=None):
        super().__init__(clip_denoised, model_kwargs)
        if eta < 0:
            raise ValueError(f"eta must be >= 0, got {eta}")
        self.diffusion = diffusion
        self.eta = float(eta)
        T = diffusion.num_timesteps
        seq = sorted(int(t) for t in timesteps) if timesteps is not None \
            else ddim_timesteps(T, num_steps, stride, skip)
        prev = [-1] + seq[:-1]
        self.steps = list(zip(seq[::-1], prev[::-1]))
        # alpha-bar with abar[-1] = 1 stored at index 0, so t_prev = -1 needs no special case.
        self._abar = np.append(1.0, diffusion.alphas_cumprod)

    def step(self, model, x, t, t_prev, noise):
        d = self.diffusion
        t_vec = paddle.full([x.shape[0]], t, dtype="int64")
        out = d.p_mean_variance(model, x, t_vec, clip_denoised=self.clip_denoised,
                                model_kwargs=self.model_kwargs)
        pred_x0 = out["pred_x0"]
        eps = d.predict_eps_from_x0(x, t_vec, pred_x0)  # consistent with the (clipped) x0
        abar_t = float(self._abar[t + 1])
        abar_prev = float(self._abar[t_prev + 1])
        sigma = self.eta * np.sqrt((1 - abar_prev) / (1 - abar_t)) * np.sqrt(1 - abar_t / abar_prev)
        dir_coef = np.sqrt(max(1 - abar_prev - sigma ** 2, 0.0))
        x_prev = np.sqrt(abar_prev) * pred_x0 + dir_coef * eps
        if sigma > 0:
            x_prev = x_prev + sigma * noise
        return x_prev, pred_x0
