"""Training losses and likelihood terms.

L_simple is Ho et al. eq. 14; the variational bound is eq. 5 with the discretized
Gaussian decoder of eq. 13 at t = 0; the hybrid loss is Improved DDPM eq. 16.
KL and log-likelihood terms are reported in bits per dimension.
"""
from __future__ import annotations

import math

import paddle

from ..config.names import LossType, MeanType
from ..runtime.progress import progress as progress_display
from .tables import mean_flat

LOG2 = math.log(2.0)
HYBRID_VLB_WEIGHT = 0.001  # lambda of Improved DDPM eq. 16


def normal_kl(mean1, logvar1, mean2, logvar2):
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)), elementwise, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + paddle.exp(logvar1 - logvar2)
                  + (mean1 - mean2) ** 2 * paddle.exp(-logvar2))


def standard_normal_cdf(x):
    # Exact Phi via erf (the official code uses a tanh approximation).
    return 0.5 * (1.0 + paddle.erf(x / math.sqrt(2.0)))


def discretized_gaussian_log_likelihood(x, means, log_scales):
    """log p(x) for x in [-1,1] on a 256-level grid under N(means, e^(2 log_scales)), eq. 13.

    The outermost bins extend to -inf and +inf.
    """
    assert x.shape == means.shape == log_scales.shape
    centered = x - means
    inv_std = paddle.exp(-log_scales)
    cdf_plus = standard_normal_cdf(inv_std * (centered + 1.0 / 255.0))
    cdf_min = standard_normal_cdf(inv_std * (centered - 1.0 / 255.0))
    log_cdf_plus = paddle.log(cdf_plus.clip(min=1e-12))
    log_one_minus_cdf_min = paddle.log((1.0 - cdf_min).clip(min=1e-12))
    log_delta = paddle.log((cdf_plus - cdf_min).clip(min=1e-12))
    return paddle.where(x < -0.999, log_cdf_plus,
                        paddle.where(x > 0.999, log_one_minus_cdf_min, log_delta))


def vb_terms_bpd(diffusion, model, x0, xt, t, clip_denoised=True, model_kwargs=None,
                 model_output=None):
    """One term of the bound in bits/dim: L_{t-1} = KL(q(x_{t-1}|x_t,x_0) || p) for t > 0,
    and the decoder NLL L_0 = -log p(x_0 | x_1) at t = 0 (eq. 5)."""
    true_mean, _, true_logvar = diffusion.q_posterior_mean_variance(x0, xt, t)
    out = diffusion.p_mean_variance(model, xt, t, clip_denoised=clip_denoised,
                                    model_kwargs=model_kwargs, model_output=model_output)
    kl = mean_flat(normal_kl(true_mean, true_logvar, out["mean"], out["log_variance"])) / LOG2
    nll = -mean_flat(discretized_gaussian_log_likelihood(
        x0, out["mean"], 0.5 * out["log_variance"])) / LOG2
    return {"output": paddle.where(t == 0, nll, kl), "pred_x0": out["pred_x0"]}


def _mse_target(diffusion, x0, xt, t, noise):
    if diffusion.mean_type is MeanType.EPS:
        return noise
    if diffusion.mean_type is MeanType.X0:
        return x0
    return diffusion.q_posterior_mean_variance(x0, xt, t)[0]


def training_losses(diffusion, model, x0, t, noise=None, model_kwargs=None):
    """Per-example losses for a batch: a dict with "loss" and, when computed, "mse" and "vb"."""
    if noise is None:
        noise = paddle.randn(x0.shape, dtype=x0.dtype)
    xt = diffusion.q_sample(x0, t, noise=noise)
    model_kwargs = model_kwargs or {}
    terms = {}
    if diffusion.loss_type in (LossType.KL, LossType.RESCALED_KL):
        terms["loss"] = vb_terms_bpd(diffusion, model, x0, xt, t, clip_denoised=False,
                                     model_kwargs=model_kwargs)["output"]
        if diffusion.loss_type is LossType.RESCALED_KL:
            terms["loss"] = terms["loss"] * diffusion.num_timesteps
        return terms

    output = model(xt, diffusion.model_timesteps(t), **model_kwargs)
    mean_out, var_out = diffusion.split_output(output, xt)
    terms["mse"] = mean_flat((_mse_target(diffusion, x0, xt, t, noise) - mean_out) ** 2)
    terms["loss"] = terms["mse"]
    if var_out is not None:
        # The variance is trained only through the bound; the mean is stop-gradiented there
        # so that L_simple alone shapes it (Improved DDPM, sec. 3.1).
        frozen = paddle.concat([mean_out.detach(), var_out], axis=1)
        vb = vb_terms_bpd(diffusion, model, x0, xt, t, clip_denoised=False,
                          model_output=frozen)["output"]
        # vb estimates L_vlb / T; scaling by T * lambda gives lambda * L_vlb (eq. 16);
        # mse_vb keeps it unscaled (upstream's MSE loss type with a learned sigma).
        unscaled = diffusion.loss_type is LossType.MSE_VB
        terms["vb"] = vb if unscaled else vb * (diffusion.num_timesteps * HYBRID_VLB_WEIGHT)
        terms["loss"] = terms["mse"] + terms["vb"]
    elif diffusion.loss_type in (LossType.HYBRID, LossType.MSE_VB):
        raise ValueError(f"loss_type {diffusion.loss_type.value!r} needs a learned variance "
                         "(var_type 'learned' or 'learned_range' and model.learn_sigma)")
    return terms


def prior_bpd(diffusion, x0):
    """KL(q(x_T | x_0) || N(0, I)) in bits/dim: the L_T term, which has no parameters."""
    t = paddle.full([x0.shape[0]], diffusion.num_timesteps - 1, dtype="int64")
    mean, _, logvar = diffusion.q_mean_variance(x0, t)
    zeros = paddle.zeros_like(mean)
    return mean_flat(normal_kl(mean, logvar, zeros, zeros)) / LOG2


@paddle.no_grad()
def calc_bpd_loop(diffusion, model, x0, clip_denoised=True, model_kwargs=None, progress=False,
                  noise_fn=None):
    """The full variational bound in bits/dim, summing every term over all timesteps.

    ``noise_fn()``, if given, supplies the noise of each x_t (from t = T-1 down to 0)
    instead of paddle.randn, e.g. per-image streams that make the result reproducible.
    """
    N, T = x0.shape[0], diffusion.num_timesteps
    vb, x0_mse, eps_mse = [], [], []
    for step in progress_display(range(T - 1, -1, -1), desc="bpd", unit="step", enabled=progress,
                                 leave=False):
        t = paddle.full([N], step, dtype="int64")
        noise = noise_fn() if noise_fn is not None else paddle.randn(x0.shape, dtype=x0.dtype)
        xt = diffusion.q_sample(x0, t, noise=noise)
        out = vb_terms_bpd(diffusion, model, x0, xt, t, clip_denoised=clip_denoised,
                           model_kwargs=model_kwargs)
        vb.append(out["output"])
        x0_mse.append(mean_flat((out["pred_x0"] - x0) ** 2))
        eps = diffusion.predict_eps_from_x0(xt, t, out["pred_x0"])
        eps_mse.append(mean_flat((eps - noise) ** 2))
    # Collected from t = T-1 down to 0; store in timestep order.
    vb = paddle.stack(vb[::-1], axis=1)
    prior = prior_bpd(diffusion, x0)
    return {"total_bpd": vb.sum(axis=1) + prior, "prior_bpd": prior, "vb": vb,
            "xstart_mse": paddle.stack(x0_mse[::-1], axis=1),
            "mse": paddle.stack(eps_mse[::-1], axis=1)}
