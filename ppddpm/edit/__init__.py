"""Editing real images with a trained model: sampling under a constraint.

Each edit reuses the sampler contract of ``ppddpm.samplers`` (a sampler's (t, t_prev) steps
and its ``step``), the per-image noise streams and the guidance wrappers:

  encode       an image to its latent x_T by the deterministic DDIM ODE run forward
               (Song et al. 2021, sec. 4.3 and 5.4); ``decode`` runs it back.
  interpolate  spherical interpolation between two latents, decoded (DDIM sec. 5.3).
  img2img      SDEdit (Meng et al. 2022): the image noised to t0 = strength * T, then the
               sampler's own steps below t0.
  inpaint      RePaint (Lugmayr et al. 2022): the known region's forward sample mixed in at
               every step, with jumps back up the chain to harmonise (resampling).
"""
from .common import to_model_range
from .encode import decode, encode
from .img2img import img2img, sdedit_start, sdedit_steps
from .inpaint import repaint, repaint_schedule
from .interpolate import interpolation_latents, seed_latent, slerp

__all__ = ["encode", "decode", "slerp", "seed_latent", "interpolation_latents", "img2img",
           "sdedit_steps", "sdedit_start", "repaint", "repaint_schedule", "to_model_range"]
