"""The allowed range of every config value, checked before anything is built or written.

``validate`` runs whenever a config is loaded or overridden: each name must be one of its
registry's (names.py), every number finite and in its range, the network buildable at the
configured resolution, and the sample settings must parse. Each failure is one
``ConfigError`` line naming the flag (where one exists) and the key, the bad value and what
is allowed. Checks that need the library live with it: the beta schedule's
(``diffusion.schedules.check_schedule``) and the sampler's (``samplers.checked_sampler``).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from typing import Optional, Tuple

from ..errors import ConfigError
from .flags import label
from .names import (ADM_ARCHS, AMP_MODES, ARCHS, CLASSIFIER_ARCHS, CLASSIFIER_POOLS, CONV_ARCHS,
                    LEARNED_VAR_TYPES, LEGACY_ARCHS, LOSS_TYPES, LR_DECAYS, MEAN_TYPES, SAMPLERS, SPACINGS, TIMESTEP_SAMPLERS, VAR_TYPES)

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
    "data.channels": AT_LEAST_1,                # and 1 or 3: validate
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
    "model.downsample_padding": Range(0, 1),
    "model.num_heads": AT_LEAST_1,              # adm: also num_head_channels, num_heads_upsample
    "model.time_embed_ch": AT_LEAST_1,
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
    "sample.order": Range(1, 3),                # the solvers
    "sample.threshold": Range(0, 1, low_open=True),   # a quantile of |x0|
    "sample.guidance_scale": AT_LEAST_0,        # 0: the plain conditional model
    "sample.classifier_scale": AT_LEAST_0,      # classifier guidance's s
    "sample.strength": Range(0, 1),             # img2img: 0 keeps the image, 1 forgets it
    "sample.jump_length": AT_LEAST_1,           # inpaint (RePaint)
    "sample.jump_n_sample": AT_LEAST_1,         # inpaint: 1 is no resampling
    "sample.interp_frames": Range(2),           # interpolate: both ends at least
}

# key -> the names it is chosen from (names.py); a None value of an Optional key is not checked.
CHOICES = {
    "model.arch": ARCHS,
    "diffusion.mean_type": MEAN_TYPES,
    "diffusion.var_type": VAR_TYPES,
    "diffusion.loss_type": LOSS_TYPES,
    "sample.sampler": SAMPLERS,
    "sample.skip": SPACINGS,
    "sample.spacing": SPACINGS,
    "train.lr_decay": LR_DECAYS,
    "train.timestep_sampler": TIMESTEP_SAMPLERS,
    "train.amp": AMP_MODES,
}

RESPACING = re.compile(r"ddim\d+|\s*\d+(\s*,\s*\d+)*\s*")   # respace.space_timesteps


def _fail(key: str, rule: str, value) -> None:
    raise ConfigError(f"{label(key)} must be {rule}, got {value!r}")


def check_config(cfg) -> None:
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
    check_model(cfg.model)
    check_sample_syntax(cfg)


# model keys that only some networks read: key -> (default, the archs that read it)
ARCH_OPTIONS = {
    "downsample_padding": (0, ("unet",)), "mid_attn_norm": (True, ("unet",)),
    "num_head_channels": (-1, ("unet",) + ADM_ARCHS),
    "use_scale_shift_norm": (False, ("unet",) + ADM_ARCHS),
}


def check_model(m) -> None:
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
    if m.arch in ADM_ARCHS:
        check_adm(m)
    if m.arch in LEGACY_ARCHS and (m.learn_sigma or m.num_classes is not None):
        raise ConfigError(f"model.arch={m.arch!r} has no learn_sigma or num_classes; use "
                          "arch 'unet' or 'fpn'")
    if m.num_head_channels != -1 and m.num_head_channels < 1:
        _fail("model.num_head_channels", "-1 (one head) or a positive head width",
              m.num_head_channels)
    for key, (default, archs) in ARCH_OPTIONS.items():
        if getattr(m, key) != default and m.arch not in archs:
            raise ConfigError(f"model.{key} is an option of arch {' | '.join(archs)}, not of "
                              f"model.arch={m.arch!r}; leave it at {default!r}")
    if m.arch not in LEGACY_ARCHS and not m.ch // 2 > m.time_freq_shift:
        # the sinusoids 10000^(-i / (ch/2 - shift)) (layers.timestep_embedding)
        raise ConfigError(f"model.ch // 2 must exceed model.time_freq_shift={m.time_freq_shift:g} "
                          f"(the timestep embedding's frequencies), got model.ch={m.ch}")


def check_adm(m) -> None:
    """The adm family: heads that divide every attention width, a classifier's head."""
    for key in ("model.num_head_channels", "model.num_heads_upsample"):
        value = getattr(m, key.split(".")[1])
        if value != -1 and value < 1:
            _fail(key, "-1 (not set) or >= 1", value)
    _check_choice("model.classifier_pool", m.classifier_pool, CLASSIFIER_POOLS)
    widths = [m.ch * k for k in m.ch_mult]
    odd = [w for w in widths if w % m.norm_groups]
    if odd:
        raise ConfigError(f"model.ch={m.ch} * model.ch_mult={m.ch_mult} gives widths {odd} that "
                          f"model.norm_groups={m.norm_groups} does not divide (GroupNorm)")
    attn = [w for i, w in enumerate(widths) if m.resolution >> i in (m.attn_resolutions or [])]
    attn.append(widths[-1])                       # the middle block's attention
    up_heads = m.num_heads if m.num_heads_upsample == -1 else m.num_heads_upsample
    if m.num_head_channels != -1 and any(w % m.num_head_channels for w in attn):
        _fail("model.num_head_channels", f"a divisor of every attention width "
              f"{sorted(set(attn))}", m.num_head_channels)
    if m.num_head_channels == -1:
        for key, heads in (("model.num_heads", m.num_heads), ("model.num_heads_upsample", up_heads)):
            if any(w % heads for w in attn):
                _fail(key, f"a divisor of every attention width {sorted(set(attn))}", heads)
    if m.arch in CLASSIFIER_ARCHS and m.learn_sigma:
        raise ConfigError("model.learn_sigma must be false for arch 'adm_classifier'")


def check_sample_syntax(cfg) -> None:
    """num_images is N-R-C; respacing is 'ddimN', 'N' or 'N1,N2,...' with positive counts."""
    try:
        parse_num_images(cfg.sample.num_images)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("--num_images", label("sample.num_images"), 1)) from None
    spec = cfg.sample.respacing
    if spec and (not RESPACING.fullmatch(spec) or not all(int(n) >= 1 for n in re.findall(r"\d+", spec))):
        _fail("sample.respacing", "'ddimN' (N steps at one stride), 'N' or 'N1,N2,...' "
              "(steps per equal section) with positive integers", spec)


def parse_num_images(spec: str) -> Tuple[int, int, int]:
    """'N-R-C' -> (N, R, C): N images in R rows and C columns, N == R*C. A bare 'N' is laid
    out near-square: C = ceil(sqrt(N)) columns and as many rows as needed."""
    parts = str(spec).strip().split("-")
    if len(parts) == 1 and parts[0].isdigit() and int(parts[0]) >= 1:
        n = int(parts[0])
        return (n,) + square_layout(n)
    try:
        n, r, c = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--num_images {spec!r} must look like N-R-C with three positive "
                          "integers, e.g. 64-8-8 (N images in R rows and C columns), or "
                          "a bare N") from None
    if min(n, r, c) < 1:
        raise ConfigError(f"--num_images {spec!r}: N, R and C must all be >= 1")
    if n != r * c:
        raise ConfigError(f"--num_images {spec!r}: N={n} must equal R*C={r}*{c}={r * c}; "
                          f"e.g. use {r * c}-{r}-{c}")
    return n, r, c


def square_layout(n: int) -> Tuple[int, int]:
    """(rows, cols) of a near-square grid of n tiles: ceil(sqrt(n)) columns."""
    ncol = int(math.ceil(math.sqrt(n)))
    return int(math.ceil(n / ncol)), ncol


def _check_choice(name: str, value: str, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not known; choose one of {list(choices)}")


def validate(cfg) -> None:
    """Every check of this module on a Config, first failure raised (see the docstring)."""
    # The nets with a T-row time table (fpn, legacy) take T from the diffusion.
    cfg.model.num_steps = cfg.diffusion.num_diffusion_steps
    for key, choices in CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value is not None:
            _check_choice(key, value, choices)
    if cfg.sample.order is not None and not 1 <= cfg.sample.order <= 3:
        raise ConfigError(f"sample.order must be 1, 2 or 3, got {cfg.sample.order}")
    if cfg.sample.classifier_scale is not None and not cfg.sample.classifier_path:
        raise ConfigError(f"{label('sample.classifier_scale')}={cfg.sample.classifier_scale:g} "
                          f"needs a classifier: give {label('sample.classifier_path')}")
    if cfg.data.channels not in (1, 3):
        raise ConfigError(f"data.channels must be 1 (greyscale) or 3 (RGB), got {cfg.data.channels}")
    learned = cfg.diffusion.var_type in LEARNED_VAR_TYPES
    if learned and not cfg.model.learn_sigma:
        raise ConfigError(f"diffusion.var_type={cfg.diffusion.var_type!r} needs a model "
                          "that outputs a variance: set model.learn_sigma=true")
    if cfg.model.learn_sigma and not learned:
        raise ConfigError("model.learn_sigma=true needs diffusion.var_type 'learned' or "
                          f"'learned_range', got {cfg.diffusion.var_type!r}")
    check_config(cfg)
