"""Samplers sharing one contract: ``sample(model, shape, seed)`` and ``progressive(...)``."""
from .base import Sampler, to_unit_range
from .ddim import DDIMSampler, ddim_timesteps
from .ddpm import DDPMSampler
from .dpm_solver import DPMSolverSampler
from .dpm_solver_pp import DPMSolverPPSampler
from .spacing import SPACINGS, timestep_grid
from .unipc import UniPCSampler

__all__ = ["Sampler", "DDPMSampler", "DDIMSampler", "DPMSolverSampler", "DPMSolverPPSampler",
           "UniPCSampler", "ddim_timesteps", "timestep_grid", "SPACINGS", "to_unit_range"]
