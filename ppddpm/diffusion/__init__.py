"""The diffusion process: beta schedules, the Gaussian diffusion's tables and math, the
losses, and respacing. It takes the network as an argument and never owns it."""
from ..config.names import LossType, MeanType, VarType
from .gaussian import GaussianDiffusion
from .respace import respace, space_timesteps
from .schedules import SHORT_CHAIN_FIX, check_schedule, get_beta_schedule, short_chain_problem

__all__ = ["GaussianDiffusion", "LossType", "MeanType", "VarType", "SHORT_CHAIN_FIX",
           "check_schedule", "get_beta_schedule", "respace", "short_chain_problem",
           "space_timesteps"]
