"""The diffusion process: beta schedules, the Gaussian diffusion's tables and math, the
losses, and respacing. It takes the network as an argument and never owns it."""
from ..config.names import LossType, MeanType, VarType
from .gaussian import GaussianDiffusion
from .respace import respace, space_timesteps
from .schedules import check_schedule, get_beta_schedule

__all__ = ["GaussianDiffusion", "LossType", "MeanType", "VarType", "check_schedule",
           "get_beta_schedule", "respace", "space_timesteps"]
