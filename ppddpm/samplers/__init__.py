"""Samplers sharing one contract: ``sample(model, shape, seed)`` and ``progressive(...)``."""
from .base import Sampler, to_unit_range
from .ddim import DDIMSampler, ddim_timesteps
from .ddpm import DDPMSampler

__all__ = ["Sampler", "DDPMSampler", "DDIMSampler", "ddim_timesteps", "to_unit_range"]
