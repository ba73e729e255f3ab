"""Flags that this run would not read: one line each, before any work, so that a typed
setting never silently does nothing (``--steps`` with the DDPM sampler, ``--order`` with
DDIM, ``--resume`` outside training)."""
from __future__ import annotations

from ..config import Config, ConfigError
from ..samplers import SAMPLER_KEYS, samplers_reading
from .args import explicit_settings, was_given
from .edit_args import EDIT_FLAG_MODES, EDIT_MODES

# flag -> the modes that read it, for flags outside the config
MODE_FLAGS = {
    "resume": ("train", "resume"),
    "resume_ckpt_path": ("train", "resume", "convert"),
    "inception_weights": ("eval", "fid_stats"), "num_samples": ("eval",),
    "fid_stats": ("eval",), "samples": ("eval",), "eval_out": ("eval", "fid_stats"),
    "inception_batch": ("eval", "fid_stats"), "metrics": ("eval",),
    **EDIT_FLAG_MODES,
}
SAMPLING_MODES = ("train", "resume", "denoise", "eval") + EDIT_MODES

# What to type instead, for the settings a user most often gives the wrong sampler.
INSTEAD = {
    ("ddpm", "num_steps"): "DDPM runs every step of its chain: for fewer, respace it "
                           "(--respacing {value}) or use --sampler ddim or dpm_solver++",
    ("ddpm", "stride"): "DDPM runs every step of its chain: for fewer, respace it "
                        "(--respacing ddim<N>) or use --sampler ddim",
    ("ddim", "order"): "DDIM is a first-order solver; --sampler dpm_solver++ or unipc take "
                       "--order",
}


def check_flags_are_read(args, cfg: Config, mode: str) -> None:
    """A ConfigError naming the first typed flag that ``mode`` and the chosen sampler ignore."""
    for flag, modes in MODE_FLAGS.items():
        if was_given(args, flag) and getattr(args, flag) not in (None, False) and mode not in modes:
            raise ConfigError(f"--{flag} {getattr(args, flag)} is not read by --mode {mode}; "
                              f"it is for --mode {' | '.join(modes)}")
    if mode not in SAMPLING_MODES or (mode == "eval" and getattr(args, "metrics", "") == "bpd"):
        return
    sampler = cfg.sample.sampler
    for key, how in explicit_settings(args).items():
        section, _, name = key.partition(".")
        if section != "sample" or name not in sum(SAMPLER_KEYS.values(), ()):
            continue
        if name not in SAMPLER_KEYS[sampler]:
            readers = " | ".join(samplers_reading(name))
            hint = INSTEAD.get((sampler, name), f"it is read by --sampler {readers}")
            raise ConfigError(f"{how} is not read by --sampler {sampler}: "
                              f"{hint.format(value=how.split()[-1].split('=')[-1])}")
