"""The Gaussian diffusion process: schedule tables and the math, never the network.

Equation numbers refer to Ho et al. 2020 (DDPM) unless stated otherwise.
The model is always an argument: ``model(x, t, **model_kwargs)`` with x float32
NCHW and t int64 holding the *original* timestep indices.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence

import numpy as np
import paddle

from ..config.names import LossType, MeanType, VarType
from .losses import calc_bpd_loop, training_losses
from .schedules import check_schedule
from .tables import extract


def _enum(cls, value):
    if isinstance(value, cls):
        return value
    try:
        return cls(value)
    except ValueError:
        raise ValueError(f"unknown {cls.__name__} {value!r}; choose one of "
                         f"{[m.value for m in cls]}") from None


class GaussianDiffusion:
    """Forward process q, posterior, and the model's reverse process p (eqs. 2-15)."""

    def __init__(self, betas, mean_type="eps", var_type="fixed_large", loss_type="mse",
                 timestep_map: Optional[Sequence[int]] = None):
        betas = np.asarray(betas, dtype=np.float64)
        assert betas.ndim == 1 and np.all(betas > 0) and np.all(betas <= 1), "betas must be in (0,1]"
        self.mean_type = _enum(MeanType, mean_type)
        self.var_type = _enum(VarType, var_type)
        self.loss_type = _enum(LossType, loss_type)
        self.betas = betas
        self.num_timesteps = T = len(betas)
        # Original indices the model is called with (identity unless respaced).
        self.timestep_map = np.arange(T, dtype=np.int64) if timestep_map is None \
            else np.asarray(timestep_map, dtype=np.int64)
        assert len(self.timestep_map) == T

        alphas = 1.0 - betas
        abar = np.cumprod(alphas)
        abar_prev = np.append(1.0, abar[:-1])
        self.alphas_cumprod, self.alphas_cumprod_prev = abar, abar_prev
        self.sqrt_alphas_cumprod = np.sqrt(abar)
        self.one_minus_alphas_cumprod = 1.0 - abar  # in float64: 1 - abar loses digits in float32
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - abar)
        self.log_one_minus_alphas_cumprod = np.log(1.0 - abar)
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / abar)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / abar - 1.0)
        # Posterior q(x_{t-1} | x_t, x_0), eqs. 6-7.
        self.posterior_variance = betas * (1.0 - abar_prev) / (1.0 - abar)
        # beta-tilde_0 is 0; the log is clipped by reusing beta-tilde_1 (as the official code).
        self.posterior_log_variance_clipped = np.log(
            np.append(self.posterior_variance[1], self.posterior_variance[1:])
            if T > 1 else np.maximum(self.posterior_variance, 1e-20))
        self.posterior_mean_coef1 = betas * np.sqrt(abar_prev) / (1.0 - abar)
        self.posterior_mean_coef2 = (1.0 - abar_prev) * np.sqrt(alphas) / (1.0 - abar)
        # fixed_large: beta_t, with the first entry set to beta-tilde_1 (official code).
        large = np.append(self.posterior_variance[1], betas[1:]) if T > 1 else betas.copy()
        self.fixed_large_variance = large
        self.fixed_large_log_variance = np.log(large)
        self._tensors: Dict[str, paddle.Tensor] = {}

    @classmethod
    def from_config(cls, cfg, betas=None) -> "GaussianDiffusion":
        """Build from a ``DiffusionConfig``; ``betas`` (e.g. from a checkpoint) wins if given."""
        if betas is None:
            betas = check_schedule(cfg)   # the schedule's betas, checked
        return cls(betas, cfg.mean_type, cfg.var_type, cfg.loss_type)

    # -- table access ----------------------------------------------------
    def table(self, name: str) -> paddle.Tensor:
        """The float64 table ``name`` as a cached float32 tensor (built once, not per step)."""
        tensor = self._tensors.get(name)
        if tensor is None:
            tensor = paddle.to_tensor(np.asarray(getattr(self, name), dtype=np.float32))
            self._tensors[name] = tensor
        return tensor

    def _x(self, name, t, x):
        return extract(self.table(name), t, x.shape)

    def model_timesteps(self, t: paddle.Tensor) -> paddle.Tensor:
        """Map indices of this (possibly respaced) chain to the model's original indices."""
        return paddle.gather(self.table_int("timestep_map"), t)

    def table_int(self, name: str) -> paddle.Tensor:
        key = "int:" + name
        if key not in self._tensors:
            self._tensors[key] = paddle.to_tensor(np.asarray(getattr(self, name), dtype=np.int64))
        return self._tensors[key]

    # -- forward process ---------------------------------------------------
    def q_mean_variance(self, x0, t):
        """q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I), eq. 4."""
        mean = self._x("sqrt_alphas_cumprod", t, x0) * x0
        var = self._x("one_minus_alphas_cumprod", t, x0)
        logvar = self._x("log_one_minus_alphas_cumprod", t, x0)
        return mean, var.expand_as(x0), logvar.expand_as(x0)

    def q_sample(self, x0, t, noise=None):
        """Sample x_t ~ q(x_t | x_0), eq. 4."""
        if noise is None:
            noise = paddle.randn(x0.shape, dtype=x0.dtype)
        return (self._x("sqrt_alphas_cumprod", t, x0) * x0
                + self._x("sqrt_one_minus_alphas_cumprod", t, x0) * noise)

    def q_posterior_mean_variance(self, x0, xt, t):
        """Mean, variance and clipped log-variance of q(x_{t-1} | x_t, x_0), eqs. 6-7."""
        mean = self._x("posterior_mean_coef1", t, xt) * x0 + self._x("posterior_mean_coef2", t, xt) * xt
        var = self._x("posterior_variance", t, xt).expand_as(xt)
        logvar = self._x("posterior_log_variance_clipped", t, xt).expand_as(xt)
        return mean, var, logvar

    # -- conversions between parametrisations -----------------------------
    def predict_x0_from_eps(self, xt, t, eps):
        """Invert eq. 4: x_0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)."""
        return (self._x("sqrt_recip_alphas_cumprod", t, xt) * xt
                - self._x("sqrt_recipm1_alphas_cumprod", t, xt) * eps)

    def predict_eps_from_x0(self, xt, t, x0):
        return ((self._x("sqrt_recip_alphas_cumprod", t, xt) * xt - x0)
                / self._x("sqrt_recipm1_alphas_cumprod", t, xt))

    def predict_x0_from_xprev(self, xt, t, xprev):
        """Invert the posterior mean (eq. 7): x_0 = (mu - coef2 x_t) / coef1."""
        return ((xprev - self._x("posterior_mean_coef2", t, xt) * xt)
                / self._x("posterior_mean_coef1", t, xt))

    # -- reverse process ---------------------------------------------------
    def split_output(self, out, x):
        """Split a model output into (mean part, variance part or None)."""
        C = x.shape[1]
        if self.var_type in (VarType.LEARNED, VarType.LEARNED_RANGE):
            if out.shape[1] != 2 * C:
                raise ValueError(f"var_type {self.var_type.value} needs a model with {2 * C} output "
                                 f"channels (mean and variance), got {out.shape[1]}")
            return out[:, :C], out[:, C:]
        if out.shape[1] != C:
            raise ValueError(f"the model returned {out.shape[1]} channels for {C}-channel input; "
                             f"a 2C output needs var_type 'learned' or 'learned_range'")
        return out, None

    def model_log_variance(self, var_out, t, x):
        """log sigma_t^2 of p(x_{t-1} | x_t) for the configured variance type."""
        if self.var_type is VarType.FIXED_SMALL:
            return self._x("posterior_log_variance_clipped", t, x).expand_as(x)
        if self.var_type is VarType.FIXED_LARGE:
            return self._x("fixed_large_log_variance", t, x).expand_as(x)
        if self.var_type is VarType.LEARNED:
            return var_out
        # Improved DDPM eq. 15: interpolate log beta_t and log beta-tilde_t, v in [-1, 1].
        min_log = self._x("posterior_log_variance_clipped", t, x)
        max_log = paddle.log(self._x("betas", t, x))
        frac = (var_out + 1.0) / 2.0
        return frac * max_log + (1.0 - frac) * min_log

    def p_mean_variance(self, model: Callable, x, t, clip_denoised: bool = True,
                        model_kwargs: Optional[dict] = None, model_output=None,
                        posterior: bool = True):
        """Mean and variance of p(x_{t-1} | x_t) plus the predicted x_0 (eqs. 11-12).

        ``model_output`` may be passed to reuse an output already computed.
        x_0 is clipped to the model's data range (``model.data_range``, default [-1, 1]).
        ``posterior=False`` returns only "pred_x0" and "model_output" (the mean part), for
        samplers that need no mean or variance (DDIM and the ODE solvers): two fewer passes
        over the batch per step.
        """
        if model_output is None:
            model_output = model(x, self.model_timesteps(t), **(model_kwargs or {}))
        mean_out, var_out = self.split_output(model_output, x)
        if self.mean_type is MeanType.EPS:
            pred_x0 = self.predict_x0_from_eps(x, t, mean_out)
        elif self.mean_type is MeanType.X0:
            pred_x0 = mean_out
        else:
            pred_x0 = self.predict_x0_from_xprev(x, t, mean_out)
        if clip_denoised:
            lo, hi = getattr(model, "data_range", (-1.0, 1.0))
            pred_x0 = pred_x0.clip(lo, hi)
        if not posterior:
            return {"pred_x0": pred_x0, "model_output": mean_out}
        log_variance = self.model_log_variance(var_out, t, x)
        if self.mean_type is MeanType.XPREV:
            # The network's x_{t-1} is the mean; clipping touches only the x0 prediction
            # (DDPM sec. 3.2; Ho's and improved-diffusion's p_mean_variance).
            mean = mean_out
        else:
            mean, _, _ = self.q_posterior_mean_variance(pred_x0, x, t)
        return {"mean": mean, "variance": paddle.exp(log_variance), "log_variance": log_variance,
                "pred_x0": pred_x0, "model_output": mean_out}

    # -- losses (implemented in losses.py, which takes the diffusion as an argument) --
    def training_losses(self, model, x0, t, noise=None, model_kwargs=None):
        return training_losses(self, model, x0, t, noise=noise, model_kwargs=model_kwargs)

    def calc_bpd_loop(self, model, x0, clip_denoised=True, model_kwargs=None, progress=False):
        return calc_bpd_loop(self, model, x0, clip_denoised=clip_denoised,
                             model_kwargs=model_kwargs, progress=progress)
