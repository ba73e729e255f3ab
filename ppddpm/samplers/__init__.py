"""Samplers sharing one contract: ``sample(model, shape, seed)`` and ``progressive(...)``."""
from .base import Sampler, to_unit_range
from .batched import generate, generate_sequence, image_shape
from .ddim import DDIMSampler, ddim_timesteps
from .ddpm import DDPMSampler
from .dpm_solver import DPMSolverSampler
from .dpm_solver_pp import DPMSolverPPSampler
from .dpm_solver_singlestep import DPMSolverSinglestepSampler
from .factory import (SAMPLER_CLASSES, SAMPLER_KEYS, build_sampler, checked_sampler,
                      sampler_description, samplers_reading)
from .spacing import SPACINGS, solver_grid, timestep_grid
from .threshold import dynamic_threshold
from .unipc import UniPCSampler

__all__ = ["Sampler", "DDPMSampler", "DDIMSampler", "DPMSolverSampler", "DPMSolverPPSampler",
           "UniPCSampler", "DPMSolverSinglestepSampler", "ddim_timesteps", "timestep_grid",
           "solver_grid", "dynamic_threshold", "SPACINGS", "to_unit_range",
           "SAMPLER_CLASSES", "build_sampler", "checked_sampler", "sampler_description", "generate",
           "generate_sequence", "image_shape", "SAMPLER_KEYS", "samplers_reading"]
