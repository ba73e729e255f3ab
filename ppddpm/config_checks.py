"""The allowed range of every config value, checked before anything is built or written.

``check_config`` runs at the end of ``config.validate``: every number must be finite and in
its range, the beta schedule must give betas in (0, 1), the network must be buildable at
the configured resolution, and the sample settings must parse. Each failure is one
``ConfigError`` line naming the flag (where one exists) and the key, the bad value and
what is allowed. ``checked_sampler`` builds the sampler (it needs the diffusion tables,
hence Paddle) so that bad sampler settings fail at start-up, not at the first grid.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from typing import List, Optional, Sequence, Tuple

from .config import Config, ConfigError, ModelConfig

SEED_MAX = 2 ** 63 - 1   # Paddle's and numpy's generators take any non-negative int64


@dataclass(frozen=True)
class Range:
    """low <= value (or low < value when low_open), and likewise for high."""
    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    high_open: bool = False

    def holds(self, value) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True

    def text(self) -> str:
        num = lambda v: str(int(v)) if float(v).is_integer() else f"{v:g}"
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {num(self.low)}"
        return (f"in {'(' if self.low_open else '['}{num(self.low)}, {num(self.high)}"
                f"{')' if self.high_open else ']'}")


AT_LEAST_0, AT_LEAST_1 = Range(0), Range(1)
POSITIVE = Range(0, low_open=True)
FRACTION = Range(0, 1, high_open=True)          # [0, 1)
SEED = Range(0, SEED_MAX)

# key -> allowed range. A None value of an Optional key means "not set" and is not checked.
RANGES = {
    "data.image_size": AT_LEAST_1,
    "data.num_workers": AT_LEAST_0,
    "data.channels": AT_LEAST_1,                # and 1 or 3: config.validate
    "data.class_level": AT_LEAST_1,             # 1: first-level sub-folders
    "model.ch": AT_LEAST_1,
    "model.num_res_blocks": AT_LEAST_0,
    "model.dropout": FRACTION,
    "model.in_channels": AT_LEAST_1,
    "model.out_channels": AT_LEAST_1,
    "model.resolution": AT_LEAST_1,
    "model.num_classes": AT_LEAST_1,
    "model.norm_groups": AT_LEAST_1,
    "model.norm_eps": POSITIVE,
    "diffusion.num_diffusion_steps": AT_LEAST_1,
    "train.batchsize": AT_LEAST_1,
    "train.training_iters": AT_LEAST_1,
    "train.lr": POSITIVE,
    "train.warmup_steps": AT_LEAST_0,
    "train.grad_clip": AT_LEAST_0,              # 0 disables clipping
    "train.ema_decay": FRACTION,
    "train.seed": SEED,
    "train.sample_interval": AT_LEAST_0,        # 0: never
    "train.ckpt_interval": AT_LEAST_0,          # 0: only at the end
    "train.keep_last": AT_LEAST_0,              # 0: keep all
    "train.accum_steps": AT_LEAST_1,
    "train.p_uncond": Range(0, 1),              # classifier-free guidance's label dropout
    "sample.stride": AT_LEAST_1,
    "sample.num_steps": AT_LEAST_1,
    "sample.eta": AT_LEAST_0,
    "sample.batchsize": AT_LEAST_1,
    "sample.sequence_every": AT_LEAST_1,
    "sample.seed": SEED,
    "sample.order": Range(1, 3),                # dpm_solver++ / dpm_solver / unipc
    "sample.guidance_scale": AT_LEAST_0,        # 0: the plain conditional model
}

# Which of beta_start/beta_end each schedule reads (schedules.py). A schedule missing here
# is still checked through the betas it gives.
SCHEDULE_USES = {
    "linear": ("beta_start", "beta_end"), "quad": ("beta_start", "beta_end"),
    "warmup10": ("beta_start", "beta_end"), "warmup50": ("beta_start", "beta_end"),
    "sigmoid": ("beta_start", "beta_end"), "const": ("beta_end",), "jsd": (), "cosine": (),
}
CONV_ARCHS = ("unet", "fpn", "legacy_unet", "legacy_fpn")
LEGACY_ARCHS = ("legacy_unet", "legacy_fpn")
RESPACING = re.compile(r"ddim\d+|\s*\d+(\s*,\s*\d+)*\s*")   # respace.space_timesteps


def _flags() -> dict:
    from .cli_args import CONFIG_FLAGS   # lazily: cli_args imports config
    return {key: flag for flag, (key, _, _) in reversed(list(CONFIG_FLAGS.items())) if key}


def label(key: str) -> str:
    """'--lr / train.lr' for a key with a command-line flag, else the key itself."""
    flag = _flags().get(key)
    return f"--{flag} / {key}" if flag else key


def _fail(key: str, rule: str, value) -> None:
    raise ConfigError(f"{label(key)} must be {rule}, got {value!r}")


def check_config(cfg: Config) -> None:
    """Raise ConfigError for the first value outside its range (see the module docstring)."""
    for section in fields(cfg):
        sub = getattr(cfg, section.name)
        for f in fields(sub):
            key, value = f"{section.name}.{f.name}", getattr(sub, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                _fail(key, "a finite number", value)
            rule = RANGES.get(key)
            if rule is not None and value is not None and not rule.holds(value):
                _fail(key, rule.text(), value)
    check_betas(cfg)
    check_model(cfg.model)
    check_sample_syntax(cfg)


def check_betas(cfg: Config) -> None:
    """0 < beta_start < beta_end < 1 where the schedule reads them; every beta in (0, 1)."""
    import numpy as np
    from .schedules import SCHEDULES, get_beta_schedule
    d = cfg.diffusion
    if d.beta_schedule not in SCHEDULES:
        _fail("diffusion.beta_schedule", f"one of {sorted(SCHEDULES)}", d.beta_schedule)
    uses = SCHEDULE_USES.get(d.beta_schedule, ())
    for name in uses:
        if not 0.0 < getattr(d, name) < 1.0:
            _fail(f"diffusion.{name}", f"in (0, 1) for the {d.beta_schedule} schedule",
                  getattr(d, name))
    if len(uses) == 2 and not d.beta_start < d.beta_end:
        raise ConfigError(f"{label('diffusion.beta_start')} must be below {label('diffusion.beta_end')} "
                          f"for the {d.beta_schedule} schedule, got {d.beta_start!r} >= {d.beta_end!r}")
    betas = get_beta_schedule(d.beta_schedule, d.num_diffusion_steps, d.beta_start, d.beta_end)
    if not np.all((betas > 0) & (betas < 1)):
        # jsd ends at beta_T = 1: alpha-bar_T = 0 makes x0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar)
        # (Ho et al. eq. 4 solved for x0) divide by zero at the first sampling step.
        raise ConfigError(f"{label('diffusion.beta_schedule')}={d.beta_schedule!r} gives betas from "
                          f"{betas.min():g} to {betas.max():g}; every beta must lie in (0, 1) "
                          "(beta = 1 leaves no signal to recover); choose another schedule")
    abar_end = float(np.prod(1.0 - betas))
    if not (abar_end > 0 and np.isfinite(np.float32(1.0 / np.sqrt(abar_end)))):
        # x0 = x_t / sqrt(abar) - sqrt(1/abar - 1) eps (Ho et al. eq. 4 solved for x0), in float32
        raise ConfigError(f"{label('diffusion.beta_schedule')}={d.beta_schedule!r} with "
                          f"{label('diffusion.beta_end')}={d.beta_end!r} over {d.num_diffusion_steps} "
                          f"steps drives alpha-bar_T to {abar_end:.3g}, which leaves no signal: "
                          "1/sqrt(alpha-bar_T) overflows float32 and samples turn to NaN; lower "
                          "beta_end or num_diffusion_steps")


def check_model(m: ModelConfig) -> None:
    """The shapes each network can actually be built with (models/)."""
    if m.arch in CONV_ARCHS:
        if any(k < 1 for k in m.ch_mult) or (not m.ch_mult and m.arch not in LEGACY_ARCHS):
            _fail("model.ch_mult", "a non-empty list of positive integers", m.ch_mult)
        down = 2 ** max(len(m.ch_mult) - 1, 0)   # one 2x downsampling between levels
        if m.resolution % down:
            raise ConfigError(f"model.resolution must be divisible by {down} = 2^(len(ch_mult) - 1) "
                              f"for model.ch_mult={m.ch_mult} (arch {m.arch!r}), got {m.resolution}")
        # every GroupNorm sees ch or a multiple of it; the legacy nets fix 32 groups
        groups = "32 (GroupNorm(32)" if m.arch in LEGACY_ARCHS else f"model.norm_groups={m.norm_groups} (GroupNorm"
        if m.ch % (32 if m.arch in LEGACY_ARCHS else m.norm_groups):
            raise ConfigError(f"model.ch must be a multiple of {groups} in arch {m.arch!r}), got {m.ch}")
        if m.arch != "legacy_fpn":                 # legacy_fpn has no attention
            reachable = sorted({m.resolution >> i for i in range(max(len(m.ch_mult), 1))})
            unreachable = [r for r in m.attn_resolutions or [] if r not in reachable]
            if unreachable:
                raise ConfigError(f"model.attn_resolutions must be among the levels' resolutions "
                                  f"{reachable}, got {list(m.attn_resolutions)}")
    if m.arch in LEGACY_ARCHS and (m.learn_sigma or m.num_classes is not None):
        raise ConfigError(f"model.arch={m.arch!r} has no learn_sigma or num_classes; use "
                          "arch 'unet' or 'fpn'")
    if m.arch in ("unet", "fpn", "mlp") and not m.ch // 2 > m.time_freq_shift:
        # the sinusoids 10000^(-i / (ch/2 - shift)) (layers.timestep_embedding)
        raise ConfigError(f"model.ch // 2 must exceed model.time_freq_shift={m.time_freq_shift:g} "
                          f"(the timestep embedding's frequencies), got model.ch={m.ch}")


def check_sample_syntax(cfg: Config) -> None:
    """num_images is N-R-C; respacing is 'ddimN', 'N' or 'N1,N2,...' with positive counts."""
    from .images import parse_num_images
    try:
        parse_num_images(cfg.sample.num_images)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("--num_images", label("sample.num_images"), 1)) from None
    spec = cfg.sample.respacing
    if spec and (not RESPACING.fullmatch(spec) or not all(int(n) >= 1 for n in re.findall(r"\d+", spec))):
        _fail("sample.respacing", "'ddimN' (N steps at one stride), 'N' or 'N1,N2,...' "
              "(steps per equal section) with positive integers", spec)


def sampler_settings(s) -> str:
    """The sample settings a sampler is built from, as flags with their keys."""
    keys = ["sample.sampler"]
    if s.sampler == "ddim":
        keys += ["sample.num_steps" if s.num_steps else "sample.stride", "sample.skip"]
    if s.respacing:
        keys.append("sample.respacing")
    return ", ".join(f"{label(k)}={getattr(s, k.split('.')[1])!r}" for k in keys)


def checked_sampler(diffusion, sample_cfg):
    """``sampling.build_sampler`` with its ValueError turned into a ConfigError naming the
    settings; call it before training so a bad stride fails now, not at the first grid."""
    from .sampling import build_sampler
    try:
        return build_sampler(diffusion, sample_cfg)
    except ValueError as exc:
        raise ConfigError(f"sampler settings {sampler_settings(sample_cfg)} do not fit the "
                          f"{diffusion.num_timesteps}-step diffusion: {exc}") from None


def output_folders(cfg: Config, mode: str, draws_samples: bool = False,
                   extra: Sequence[Tuple[str, str]] = ()) -> List[Tuple[str, str]]:
    """(label, path) of the folders ``mode`` writes to, for outputs.prepare_output_dirs."""
    training = ["train.ckpt_dir", "train.log_dir"] + (["sample.sample_dir"] if draws_samples else [])
    keys = {"train": training, "resume": training, "convert": ["train.ckpt_dir"],
            "denoise": ["sample.sample_dir"], "eval": ["sample.sample_dir"]}.get(mode, [])
    sections = {k: getattr(getattr(cfg, k.split(".")[0]), k.split(".")[1]) for k in keys}
    return [(label(k), path) for k, path in sections.items()] + list(extra)
