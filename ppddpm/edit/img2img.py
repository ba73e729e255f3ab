"""SDEdit (Meng et al. 2022): guided image synthesis by noising an image and denoising it.

The image x0 is noised by the forward process to t0 = strength * T (DDPM eq. 4),

  x_t0 = sqrt(abar_t0) x0 + sqrt(1 - abar_t0) eps,

and the chosen sampler runs its own steps from there: those of its grid with t < strength * T,
so t0 is the largest of them. eps is draw 0 of the image's noise stream, the draw that plain
sampling uses as x_T, and the steps read the stream's later draws as they always do. Hence:

  strength 0   no step is left: the input comes back unchanged;
  strength 1   every step is kept and the start is eps itself, the prior draw every sampler
               starts from (abar_T ~ 0): exactly plain sampling from the same seed.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import paddle

from ..samplers.base import Sampler
from ..samplers.classifier_guidance import ClassifierGuidance
from ..samplers.noise import NoiseStream
from .common import abar_table, as_tensor, q_sample, to_model_range, with_steps


def sdedit_steps(sampler: Sampler, strength: float) -> List[Tuple[int, int]]:
    """The sampler's (t, t_prev) pairs with t < strength * T (T: its chain's length)."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    limit = strength * sampler.diffusion.num_timesteps
    return [(t, t_prev) for t, t_prev in sampler.steps if t < limit]


def sdedit_start(sampler: Sampler, x0: paddle.Tensor, eps: paddle.Tensor,
                 strength: float) -> paddle.Tensor:
    """x_t0 of the module docstring (in the model's range): eps itself at strength 1."""
    steps = sdedit_steps(sampler, strength)
    if not steps:
        return x0
    if strength == 1.0:
        return eps
    return q_sample(float(abar_table(sampler)[steps[0][0] + 1]), x0, eps)


def img2img(model, sampler: Sampler, x0: paddle.Tensor, strength: float, seed: int = 0,
            index_offset: int = 0, progress: bool = False, y=None, guidance_scale: float = 0.0,
            classifier: Optional[ClassifierGuidance] = None) -> paddle.Tensor:
    """SDEdit of the images ``x0`` ([N, C, H, W] in [-1, 1]); returns [-1, 1] images. Image i
    uses the noise stream of (seed, index_offset + i), as ``Sampler.sample`` does;
    ``y``/``guidance_scale``/``classifier`` as there."""
    x0 = as_tensor(x0)
    steps = sdedit_steps(sampler, strength)
    if not steps:
        return x0.clone()
    n, shape = x0.shape[0], list(x0.shape[1:])
    eps = NoiseStream(seed, range(index_offset, index_offset + n), shape, max_draws=1).next()
    start = sdedit_start(sampler, to_model_range(x0, model), eps, strength)
    return with_steps(sampler, steps).sample(model, [n] + shape, seed=seed,
                                             index_offset=index_offset, noise=start.numpy(),
                                             progress=progress, y=y,
                                             guidance_scale=guidance_scale, classifier=classifier)
