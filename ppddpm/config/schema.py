"""Configuration as data: dataclasses loaded from YAML, overridden by ``-o`` and flags.

Strings live only here, at the boundary; they are validated with errors that
name the bad value and list the accepted ones.
"""
from __future__ import annotations

import dataclasses
import datetime
import os
import warnings
from dataclasses import dataclass, field, fields
from typing import Any, List, Optional

import yaml

from ..errors import ConfigError
from .checks import validate
from .flags import label


@dataclass
class DataConfig:
    dataset: str = "cifar10"          # cifar10 | folder | toy name
    data_dir: str = "./datasets/cifar10"
    image_size: int = 32
    random_flip: bool = True
    num_workers: int = 8
    download: bool = True
    channels: int = 3                 # 1 (greyscale) | 3 (RGB); image folders convert to it
    class_level: int = 1              # image folders: the sub-folder depth that names the class
    class_names: Optional[List[str]] = None  # the labels' names, set by conditional training
    in_memory: bool = True            # small sets decoded once and batched from memory (no workers)


@dataclass
class ModelConfig:
    arch: str = "unet"
    ch: int = 128
    ch_mult: List[int] = field(default_factory=lambda: [1, 2, 2, 2])
    num_res_blocks: int = 2
    attn_resolutions: List[int] = field(default_factory=lambda: [16])
    dropout: float = 0.1
    in_channels: int = 3
    out_channels: int = 3
    resolution: int = 32
    learn_sigma: bool = False
    num_classes: Optional[int] = None
    num_steps: int = 1000             # only the legacy nets and the fpn need T (embedding table)
    norm_groups: int = 32             # GroupNorm groups (official: 32)
    norm_eps: float = 1e-6            # GroupNorm epsilon (official TF group_norm: 1e-6)
    time_freq_shift: float = 1.0      # sinusoid f_i = 10000^(-i/(half - shift)); official: 1
    # arch unet options beyond the official network (diffusers UNet2DModel settings; unet
    # also reads num_head_channels and use_scale_shift_norm below):
    downsample_padding: int = 0       # 0: TF 'SAME' (0 before, 1 after); 1: one on each side
    mid_attn_norm: bool = True        # GroupNorm before the middle attention
    # arch adm / adm_classifier only (improved-/guided-diffusion; upstream's flag names):
    num_heads: int = 1                # attention heads ...
    num_head_channels: int = -1       # ... or, when not -1, heads of this width
    num_heads_upsample: int = -1      # heads of the up path (-1: num_heads)
    use_new_attention_order: bool = False  # False: legacy (heads split before q, k, v)
    use_scale_shift_norm: bool = False     # AdaGN: norm(h) * (1 + scale) + shift
    resblock_updown: bool = False     # residual blocks resample (else conv / avg-pool)
    time_embed_ch: Optional[int] = None  # upstream num_channels when it is not ch (512 model:
                                         # channel_mult 0.5 -> ch 128, time_embed_ch 256)
    rescale_timesteps: bool = False   # the network sees t * 1000 / T (upstream's flag)
    classifier_pool: str = "attention"   # adm_classifier head: config.names.CLASSIFIER_POOLS


@dataclass
class DiffusionConfig:
    beta_schedule: str = "linear"
    beta_start: float = 0.0001
    beta_end: float = 0.02
    num_diffusion_steps: int = 1000
    mean_type: str = "eps"
    var_type: str = "fixed_large"
    loss_type: str = "mse"


@dataclass
class TrainConfig:
    batchsize: int = 128
    training_iters: int = 800000
    lr: float = 2e-4
    warmup_steps: int = 5000
    lr_decay: str = "constant"        # constant | linear (to 0 at the last iteration)
    grad_clip: float = 1.0
    ema_decay: float = 0.9999
    seed: int = 0
    sample_interval: int = 5000
    ckpt_interval: int = 40000
    keep_last: int = 0                # 0 keeps every checkpoint
    ckpt_prefix: str = "cifar10"
    ckpt_dir: str = "./ckpts"
    log_dir: str = "./log"
    accum_steps: int = 1
    amp: str = "off"
    timestep_sampler: str = "uniform"  # uniform | loss_aware (Improved DDPM eq. 18, for the vlb)
    conditional: bool = False         # train on the data set's class labels (sets model.num_classes)
    p_uncond: float = 0.1             # label dropped to "no label" (Ho & Salimans 2022: 0.1 or 0.2)


@dataclass
class SampleConfig:
    sampler: str = "ddpm"
    stride: int = 10
    num_steps: Optional[int] = None
    eta: float = 0.0
    skip: str = "uniform"
    respacing: Optional[str] = None
    clip_denoised: bool = True
    num_images: str = "64-8-8"
    batchsize: Optional[int] = None   # None: use train.batchsize
    sample_dir: str = "./sample"
    sample_postfix: str = "ddpm_cifar10_test"
    sequence_every: Optional[int] = None
    seed: int = 0
    class_label: Optional[str] = None  # conditional models: index or name, a,b,c, or all
    guidance_scale: float = 0.0        # classifier-free guidance w (0: the conditional model)
    classifier_path: Optional[str] = None     # classifier guidance: a noisy classifier's file
    classifier_scale: Optional[float] = None  # its scale s (None: 1.0 with classifier_path)
    order: Optional[int] = None       # solvers' order (None: config.names.SOLVER_DEFAULTS)
    clipped_eps: Optional[bool] = None  # DDIM and solvers: eps from the clipped x0 (improved-
                                      # diffusion); None: in guided runs only
    threshold: Optional[float] = None  # Imagen's dynamic thresholding of x0 at this quantile
    spacing: Optional[str] = None     # timestep grid of DDIM and the solvers; None: DDIM uses
                                      # `skip`, the solvers SOLVER_DEFAULTS (logsnr)
    strength: float = 0.5             # --mode img2img (SDEdit): noise the image to t = strength * T
    jump_length: int = 10             # --mode inpaint (RePaint): levels per jump back up the chain
    jump_n_sample: int = 10           # --mode inpaint: times each stretch is denoised (1: no resampling)
    interp_frames: int = 10           # --mode interpolate: frames from one end to the other


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, strict: bool = True) -> "Config":
        """Build from nested dicts. ``strict=False`` (configs stored in weight files, maybe
        by a newer ppddpm) drops unknown keys with one warning instead of failing."""
        cfg = cls()
        unknown = []
        for section, values in (d or {}).items():
            sub = getattr(cfg, section, None)
            if sub is None or not dataclasses.is_dataclass(sub):
                if strict:
                    raise ConfigError(f"unknown config section {section!r}; known: "
                                      f"{[f.name for f in fields(cls)]}")
                unknown.append(section)
                continue
            known = {f.name for f in fields(sub)}
            for key, value in (values or {}).items():
                if not strict and key not in known:
                    unknown.append(f"{section}.{key}")
                    continue
                set_value(cfg, f"{section}.{key}", value)
        if unknown:
            warnings.warn(f"ignoring config keys this version of ppddpm does not know: {unknown}",
                          stacklevel=2)
        validate(cfg)
        return cfg


def _read_yaml(path: str, seen=()) -> dict:
    """Read a YAML config; a top-level ``base: other.yaml`` (relative to this file) is
    read first and this file's sections are merged over it."""
    try:
        with open(path, "r", encoding="utf-8") as fh:
            raw = yaml.safe_load(fh) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {path!r} does not exist") from None
    except OSError as exc:  # a folder, no permission, an I/O error
        raise ConfigError(f"config file {path!r} cannot be read: {exc.strerror or exc}") from None
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: e.g. 2000-40-50 read as a date
        reason = " ".join(str(exc).split())   # one line: YAML's messages span several
        raise ConfigError(f"config file {path!r} is not valid YAML: {reason}; quote values such "
                          "as num_images: \"2000-40-50\"") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path!r} must hold sections (data:, model:, ...)")
    base = raw.pop("base", None)
    for section, values in raw.items():
        if values is not None and not isinstance(values, dict):
            raise ConfigError(f"config file {path!r}: section {section!r} must be a mapping of "
                              f"key: value lines, got {type(values).__name__} {values!r}")
    if base is None:
        return raw
    if not isinstance(base, str):
        raise ConfigError(f"config file {path!r}: base must be a file name, got {base!r}")
    base_path = os.path.join(os.path.dirname(os.path.abspath(path)), base)
    if base_path in seen:
        raise ConfigError(f"config {path!r} includes itself through 'base'")
    merged = _read_yaml(base_path, seen + (base_path,))
    for section, values in raw.items():
        merged.setdefault(section, {}).update(values or {})
    return merged


def load_config(path: str) -> Config:
    return Config.from_dict(_read_yaml(path))


def _coerce(value: Any, target_type: Any, name: str) -> Any:
    """Convert a YAML/CLI value to the field's declared type."""
    t = str(target_type)
    if value is None:
        return None
    if isinstance(value, str) and value.lower() in ("none", "null") and "Optional" in t:
        return None
    if "List[int]" in t:
        if isinstance(value, str):
            value = [v for v in value.replace("[", "").replace("]", "").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise TypeError(value)
        return [_to_int(v) for v in value]
    if "List[str]" in t:
        if isinstance(value, str):
            value = [v.strip() for v in value.replace("[", "").replace("]", "").split(",") if v.strip()]
        return [str(v) for v in value]
    if "bool" in t:
        return parse_bool(value, name)
    if "int" in t:
        return _to_int(value)
    if isinstance(value, (bool, list, dict)):  # True is not 1.0, a list is not text
        raise TypeError(value)
    if "float" in t:
        return float(value)
    return str(value)


def _to_int(value: Any) -> int:
    """An integer, or a float/str that is one; 1.5, True and lists are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            value = float(value)   # "64.0" is an integer; "abc" raises
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(value)
    return int(value)


def parse_bool(value: Any, name: str = "value") -> bool:
    """Real booleans: 'False', 'false', '0', 'no' are False (the original's type=bool bug)."""
    if isinstance(value, bool):
        return value
    s = str(value).strip().lower()
    if s in ("1", "true", "yes", "y", "on"):
        return True
    if s in ("0", "false", "no", "n", "off"):
        return False
    raise ConfigError(f"{name} must be a boolean (true/false), got {value!r}")


def set_value(cfg: Config, dotted: str, value: Any) -> None:
    """Set ``section.key`` to ``value``, coerced to the field's type."""
    if "." not in dotted:
        raise ConfigError(f"override {dotted!r} must look like section.key=value")
    section, key = dotted.split(".", 1)
    sub = getattr(cfg, section, None)
    if sub is None or not dataclasses.is_dataclass(sub):
        raise ConfigError(f"unknown config section {section!r} in {dotted!r}; known: "
                          f"{[f.name for f in fields(Config)]}")
    types = {f.name: f.type for f in fields(sub)}
    if key not in types:
        raise ConfigError(f"unknown config key {dotted!r}; {section} has: {sorted(types)}")
    try:
        setattr(sub, key, _coerce(value, types[key], dotted))
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        kind = next((text for word, text in (("List[int]", "a list of integers such as [1, 2]"),
                                             ("int", "an integer"), ("float", "a number"))
                     if word in str(types[key])), "text")
        raise ConfigError(f"{label(dotted)}={value!r} is not {kind}") from None


def _parse_override_value(text: str):
    """A YAML scalar or list; text YAML cannot read (like 2000-40-50, an impossible date)
    and date-like text stay strings."""
    if not text.strip():
        return text
    try:
        value = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError):
        return text
    return text if isinstance(value, (datetime.date, datetime.datetime)) else value


def apply_overrides(cfg: Config, overrides: List[str], check: bool = True) -> Config:
    """Apply ``-o section.key=value`` overrides (the Paddle toolkits' convention);
    ``check=False`` leaves validation to the caller (e.g. after more values are set)."""
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, value = item.split("=", 1)
        set_value(cfg, key.strip(), _parse_override_value(value))
    if check:
        validate(cfg)
    return cfg
