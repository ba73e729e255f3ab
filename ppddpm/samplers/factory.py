"""The sampler a SampleConfig asks for: the one factory, keyed by the config's registry."""
from __future__ import annotations

from ..config import ConfigError, SampleConfig, label
from ..config.names import SAMPLERS, SAMPLER_TITLES, SOLVERS
from ..diffusion import GaussianDiffusion, respace
from .base import Sampler
from .ddim import DDIMSampler
from .ddpm import DDPMSampler
from .dpm_solver import DPMSolverSampler
from .dpm_solver_pp import DPMSolverPPSampler
from .dpm_solver_singlestep import DPMSolverSinglestepSampler
from .unipc import UniPCSampler

# sample.sampler -> class; the names are config.names.SAMPLERS, in its order.
SAMPLER_CLASSES = {"ddpm": DDPMSampler, "ddim": DDIMSampler, "dpm_solver++": DPMSolverPPSampler,
                   "dpm_solver": DPMSolverSampler, "unipc": UniPCSampler,
                   "dpm_solver_singlestep": DPMSolverSinglestepSampler}
assert tuple(SAMPLER_CLASSES) == SAMPLERS, "a sampler name without its class, or the reverse"


# The sample.* keys that some samplers read and others do not (build_sampler below); every
# other sample key (seed, respacing, clip_denoised, batch, classes ...) is read by all.
SAMPLER_KEYS = {
    "ddpm": (),
    "ddim": ("num_steps", "stride", "eta", "skip", "spacing", "clipped_eps"),
    **{name: ("num_steps", "stride", "order", "spacing", "clipped_eps") for name in SOLVERS},
}
assert tuple(SAMPLER_KEYS) == SAMPLERS


def samplers_reading(key: str) -> list:
    """The samplers that read ``sample.{key}``."""
    return [name for name, keys in SAMPLER_KEYS.items() if key in keys]


def build_sampler(diffusion: GaussianDiffusion, cfg: SampleConfig) -> Sampler:
    """DDPM (optionally on a respaced chain), DDIM or an ODE solver, as ``cfg`` says."""
    if cfg.respacing:
        diffusion = respace(diffusion, cfg.respacing)
    steps = dict(num_steps=cfg.num_steps) if cfg.num_steps else dict(stride=cfg.stride)
    cls = SAMPLER_CLASSES[cfg.sampler]
    limits = dict(clip_denoised=cfg.clip_denoised, threshold=cfg.threshold)
    if cfg.sampler == "ddim":
        return cls(diffusion, eta=cfg.eta, skip=cfg.spacing or cfg.skip,
                   clipped_eps=cfg.clipped_eps, **limits, **steps)
    if cfg.sampler in SOLVERS:   # unset order and spacing: config.names.SOLVER_DEFAULTS
        return cls(diffusion, spacing=cfg.spacing, order=cfg.order,
                   clipped_eps=cfg.clipped_eps, **limits, **steps)
    return cls(diffusion, **limits)


def sampler_name(sampler: Sampler) -> str:
    """The registry name of a sampler object (by its class)."""
    return next(name for name, cls in SAMPLER_CLASSES.items() if isinstance(sampler, cls))


def sampler_description(sampler: Sampler) -> str:
    name = sampler_name(sampler)
    title = SAMPLER_TITLES[name]
    eps = {True: ", eps from clipped x0", False: ", model eps",
           None: ""}[getattr(sampler, "clipped_eps", None)]
    if sampler.threshold is not None:
        eps += f", dynamic threshold {sampler.threshold:g}"
    if name == "ddim":
        return f"{title}, {sampler.num_steps} steps, eta {sampler.eta:g}{eps}"
    if name in SOLVERS:
        kind = "" if name == "dpm_solver_singlestep" else " multistep"
        return (f"{title}{kind} order {sampler.order}, {sampler.num_steps} "
                f"steps, {sampler.spacing} spacing{eps}")
    return f"{title}, {sampler.num_steps} steps, {sampler.diffusion.var_type.value} variance"


def sampler_settings(s: SampleConfig) -> str:
    """The sample settings a sampler is built from, as flags with their keys."""
    keys = ["sample.sampler"]
    if s.sampler == "ddim" or s.sampler in SOLVERS:
        keys.append("sample.num_steps" if s.num_steps else "sample.stride")
    if s.sampler == "ddim":
        keys.append("sample.skip")
    if s.respacing:
        keys.append("sample.respacing")
    return ", ".join(f"{label(k)}={getattr(s, k.split('.')[1])!r}" for k in keys)


def checked_sampler(diffusion: GaussianDiffusion, sample_cfg: SampleConfig) -> Sampler:
    """``build_sampler`` with its ValueError turned into a ConfigError naming the settings;
    call it before training so a bad stride fails now, not at the first grid."""
    try:
        return build_sampler(diffusion, sample_cfg)
    except ValueError as exc:
        raise ConfigError(f"sampler settings {sampler_settings(sample_cfg)} do not fit the "
                          f"{diffusion.num_timesteps}-step diffusion: {exc}") from None
