"""Every list of names a config value is chosen from: one registry each.

The configuration checks a value against these; the command line's choices and ``--help``,
and the factories above (``models.build_model``, ``samplers.build_sampler``,
``samplers.spacing.timestep_grid``) read the same tuples. A new network, sampler or
spacing starts here, then gets its builder (docs/architecture.md).
"""
from __future__ import annotations

import enum


class MeanType(enum.Enum):
    """What the network predicts (Ho et al. 2020 sec. 3.2; Improved DDPM sec. 3)."""
    EPS = "eps"      # the noise
    X0 = "x0"        # x_0
    XPREV = "xprev"  # the posterior mean of x_{t-1}


class VarType(enum.Enum):
    """The reverse-process variance."""
    FIXED_SMALL = "fixed_small"      # posterior variance beta-tilde_t (Ho et al. eq. 7)
    FIXED_LARGE = "fixed_large"      # beta_t
    LEARNED = "learned"              # the model outputs log-variance
    LEARNED_RANGE = "learned_range"  # Improved DDPM eq. 15


class LossType(enum.Enum):
    MSE = "mse"
    KL = "kl"
    HYBRID = "hybrid"            # Improved DDPM eq. 16: L_simple + lambda L_vlb (vb x T/1000)
    MSE_VB = "mse_vb"            # L_simple + the bound's term unscaled (guided-diffusion's
                                 # learn_sigma loss without rescale_learned_sigmas)
    RESCALED_KL = "rescaled_kl"  # the bound's term x T: an estimate of L_vlb (use_kl)


def values(enum_class) -> tuple:
    return tuple(member.value for member in enum_class)


MEAN_TYPES, VAR_TYPES, LOSS_TYPES = values(MeanType), values(VarType), values(LossType)
LEARNED_VAR_TYPES = (VarType.LEARNED.value, VarType.LEARNED_RANGE.value)

# Beta schedules (diffusion/schedules.py); jsd ends at beta = 1, which the checks refuse.
BETA_SCHEDULES = ("linear", "linear_scaled", "quad", "const", "jsd", "warmup10", "warmup50",
                  "cosine", "sigmoid")

# Networks (models/): the official DDPM UNet, the FPN UNet, the original reproduction's
# two nets, the 2-D toy MLP, and improved-/guided-diffusion's UNet and noisy classifier.
ARCHS = ("unet", "fpn", "legacy_unet", "legacy_fpn", "mlp", "adm", "adm_classifier")
ADM_ARCHS = ("adm", "adm_classifier")
CLASSIFIER_ARCHS = ("adm_classifier",)             # x, t -> logits, not a diffusion network
CLASSIFIER_POOLS = ("adaptive", "attention", "spatial", "spatial_v2")   # its heads
LEGACY_ARCHS = ("legacy_unet", "legacy_fpn")       # fixed GroupNorm(32), no labels or sigma
CONV_ARCHS = tuple(a for a in ARCHS if a != "mlp")  # image networks with levels and GroupNorm

# Samplers (samplers/): ancestral DDPM, DDIM, the multistep ODE solvers and singlestep
# DPM-Solver (2S / 3S).
SAMPLERS = ("ddpm", "ddim", "dpm_solver++", "dpm_solver", "unipc", "dpm_solver_singlestep")
SOLVERS = ("dpm_solver++", "dpm_solver", "unipc", "dpm_solver_singlestep")   # read sample.order
SAMPLER_TITLES = {"ddpm": "DDPM ancestral", "ddim": "DDIM", "dpm_solver++": "DPM-Solver++",
                  "dpm_solver": "DPM-Solver", "unipc": "UniPC",
                  "dpm_solver_singlestep": "DPM-Solver singlestep"}
# The one registry of the solvers' defaults, read by their classes (Python) and by the config
# (command line) alike: the order when sample.order is unset, the grid when sample.spacing is.
# Log-SNR grids are the best at few steps (benchmarks/RESULTS.md); singlestep order 3 is
# the DPM-Solver authors' recommendation for unconditional sampling.
SOLVER_DEFAULTS = {"dpm_solver++": {"order": 2, "spacing": "logsnr"},
                   "dpm_solver": {"order": 2, "spacing": "logsnr"},
                   "unipc": {"order": 2, "spacing": "logsnr"},
                   "dpm_solver_singlestep": {"order": 3, "spacing": "logsnr"}}

# Timestep grids of DDIM and the solvers (samplers/spacing.py).
SPACINGS = ("uniform", "quadratic", "linspace", "trailing", "logsnr")

LR_DECAYS = ("constant", "linear")
TIMESTEP_SAMPLERS = ("uniform", "loss_aware")       # train/timestep_sampler.py
AMP_MODES = ("off", "float16", "bfloat16")
