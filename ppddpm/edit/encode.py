"""Images to their latents x_T and back by the deterministic DDIM ODE (Song et al. 2021).

DDIM with eta = 0 is Euler's method for the probability-flow ODE written in y = x / alpha
and rho = sigma / alpha (DDIM eq. 14): dy = eps(x_t, t) d rho. Run forward, from the data
up the same grid, it maps an image to the x_T that decodes back to it (sec. 4.3, 5.4):

  x0_hat = (x_s - sigma_s eps) / alpha_s,   x_t = alpha_t x0_hat + sigma_t eps,

for each grid pair s < t, with eps = eps_theta(x_s, t): the noise the decoder's step from t
will see, taken at the nearest point known (x_s), as diffusers' DDIMInverseScheduler does;
at s = -1 (the data) alpha = 1, sigma = 0. Both directions are first-order, so the
reconstruction error falls like 1 / steps (tests/test_edit_oracle.py measures it).
"""
from __future__ import annotations

import math
from typing import Optional

import paddle

from ..runtime.progress import progress as progress_display
from ..samplers.base import Sampler
from ..samplers.classifier_guidance import ClassifierGuidance, guided_model
from ..samplers.continuous import model_predictions
from .common import abar_table, as_tensor, to_model_range


def encode(model, sampler: Sampler, x0: paddle.Tensor, progress: bool = False, y=None,
           guidance_scale: float = 0.0,
           classifier: Optional[ClassifierGuidance] = None) -> paddle.Tensor:
    """x_T of the images ``x0`` ([N, C, H, W] in [-1, 1]) on the grid of ``sampler`` (its
    (t, t_prev) pairs walked upwards); ``y``/``guidance_scale``/``classifier`` as in
    ``Sampler.progressive``. Decode with ``decode`` and the same sampler (DDIM, eta 0)."""
    model = guided_model(model, y, guidance_scale, classifier)
    abar = abar_table(sampler)
    x = to_model_range(as_tensor(x0), model)
    bar = progress_display(sampler.steps[::-1], desc="encode", unit="step", enabled=progress,
                           leave=False)
    for t, s in bar:   # from s (less noise) up to t
        with paddle.no_grad():
            _, eps = model_predictions(sampler.diffusion, model, x, t, clip_denoised=False,
                                       clipped_eps=False, model_kwargs=sampler.model_kwargs)
        a_s, a_t = float(abar[s + 1]), float(abar[t + 1])
        x0_hat = (x - math.sqrt(1.0 - a_s) * eps) / math.sqrt(a_s)
        x = math.sqrt(a_t) * x0_hat + math.sqrt(1.0 - a_t) * eps
    return x


def decode(model, sampler: Sampler, x_T: paddle.Tensor, progress: bool = False, y=None,
           guidance_scale: float = 0.0,
           classifier: Optional[ClassifierGuidance] = None) -> paddle.Tensor:
    """The images ([-1, 1]) that ``sampler`` draws from the latents ``x_T``."""
    x_T = as_tensor(x_T)
    return sampler.sample(model, x_T.shape, noise=x_T.numpy(), progress=progress, y=y,
                          guidance_scale=guidance_scale, classifier=classifier)
