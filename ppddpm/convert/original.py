"""Files of the original PaddlePaddle reproduction -> ppddpm configs and inference files.

The original's files are ``paddle.save`` dicts without a config: a training checkpoint
holds ``model``, ``model_ema``, ``optim``, ``lr_sched``, ``options``, ``betas`` and
``ckpt_idx``; an inference file holds ``model``, ``options`` and ``betas``. The
network is recognised from its parameter names, and its sizes (ch, ch_mult,
num_res_blocks, attention levels, T) are read off the tensor shapes, so any size of
the original UNet/FPN converts, not only the published ones.
"""
from __future__ import annotations

import re
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

from ..config import Config, ConfigError, DataConfig, DiffusionConfig, ModelConfig, validate
from ..diffusion.schedules import get_beta_schedule
from ..errors import CheckpointError
from ..io.weights import load_checkpoint
from ..models import build_model
from ..models.state import as_numpy, load_state_strict, tensor_shape
from ..version import __version__

UNET_MARKER = "middles.0.conv1.2.weight"   # only the original UNet has this key
FPN_MARKER = "middle.out_norm.weight"      # only the original FPN has this key
# Image sizes the original scripts trained at (the files do not record them).
DEFAULT_RESOLUTION = {"legacy_unet": 32, "legacy_fpn": 128}


def detect_legacy_arch(state: Mapping[str, object]) -> Optional[str]:
    """'legacy_unet', 'legacy_fpn', or None when the keys match neither network."""
    if UNET_MARKER in state:
        return "legacy_unet"
    if FPN_MARKER in state:
        return "legacy_fpn"
    return None


def _shape(state, key: str, source: str) -> Tuple[int, ...]:
    if key not in state:
        raise CheckpointError(f"{source}: looks like the original reproduction's network but "
                              f"has no tensor {key!r}; the file is incomplete or not from it")
    return tensor_shape(state[key])


def _layers(state, prefix: str) -> Dict[int, Dict[str, Tuple[int, ...]]]:
    """{index: {sub-key: shape}} for keys like '<prefix>.<index>.<sub-key>'."""
    out: Dict[int, Dict[str, Tuple[int, ...]]] = {}
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.(.+)$")
    for key, value in state.items():
        m = pattern.match(key)
        if m:
            out.setdefault(int(m.group(1)), {})[m.group(2)] = tensor_shape(value)
    return out


def _levels(kinds: List[str]) -> List[List[int]]:
    """Split a sequence of 'block'/'down' markers into the block positions of each level."""
    levels, current = [], []
    for i, kind in enumerate(kinds):
        if kind == "block":
            current.append(i)
        else:
            levels.append(current)
            current = []
    levels.append(current)
    return levels


def legacy_model_config(state: Mapping[str, object], source: str = "checkpoint") -> ModelConfig:
    """Read the original network's ModelConfig off its parameter names and shapes."""
    arch = detect_legacy_arch(state)
    if arch is None:
        raise CheckpointError(f"{source}: its weights match neither the original UNet (no "
                              f"{UNET_MARKER!r}) nor the original FPN (no {FPN_MARKER!r}); "
                              f"first keys: {list(state)[:5]}")
    ch, in_ch = _shape(state, "in_conv.weight", source)[:2]
    num_steps = _shape(state, "time_emb.embedding_time.0.weight", source)[0]
    downs = _layers(state, "downs")
    if arch == "legacy_unet":
        out_ch = _shape(state, "out_conv.2.weight", source)[0]
        block_key, width_key = "conv1.2.weight", "conv1.2.weight"
        kinds = ["block" if block_key in downs.get(i, {}) else "down"
                 for i in range(max(downs) + 1 if downs else 0)]
    else:
        out_ch = _shape(state, "out_conv.1.weight", source)[0]
        block_key, width_key = "out_norm.weight", "conv1.0.weight"
        # Average pools have no parameters: a missing index is a pool.
        kinds = ["block" if i in downs else "down" for i in range(max(downs) + 1 if downs else 0)]
    levels = _levels(kinds)
    if not levels or not levels[0] or any(len(lv) != len(levels[0]) for lv in levels):
        raise CheckpointError(f"{source}: the 'downs' layers of this {arch} do not form levels "
                              f"of equal depth ({[len(lv) for lv in levels]} blocks)")
    ch_mult = []
    for lv in levels:
        width = downs[lv[0]].get(width_key)
        if width is None or width[0] % ch:
            raise CheckpointError(f"{source}: cannot read the width of downs.{lv[0]} "
                                  f"({width_key} is {width}, ch is {ch})")
        ch_mult.append(width[0] // ch)
    resolution = DEFAULT_RESOLUTION[arch]
    attn = []
    if arch == "legacy_unet":
        attn = [resolution >> i for i, lv in enumerate(levels)
                if "attn.norm.weight" in downs[lv[0]]]
    return ModelConfig(arch=arch, ch=int(ch), ch_mult=ch_mult, num_res_blocks=len(levels[0]),
                       attn_resolutions=attn, dropout=0.1 if arch == "legacy_unet" else 0.0,
                       in_channels=int(in_ch), out_channels=int(out_ch), resolution=resolution,
                       learn_sigma=False, num_classes=None, num_steps=int(num_steps))


def legacy_betas(obj: Mapping, source: str) -> np.ndarray:
    """The file's betas (float64), else the schedule its options describe."""
    if obj.get("betas") is not None:
        betas = as_numpy(obj["betas"]).astype(np.float64)
        if betas.ndim != 1 or betas.size == 0:
            raise CheckpointError(f"{source}: 'betas' must be a 1-D array, got shape "
                                  f"{list(betas.shape)}")
        return betas
    opts = obj.get("options") or {}
    try:
        return get_beta_schedule(opts["beta_schedule"], int(opts["num_diffusion_steps"]),
                                 float(opts["beta_start"]), float(opts["beta_end"]))
    except KeyError as exc:
        raise CheckpointError(f"{source}: has no 'betas' and its options lack {exc}, so the "
                              "noise schedule is unknown") from None


def legacy_config(state: Mapping[str, object], options: Optional[Mapping], betas: np.ndarray,
                  source: str = "checkpoint") -> Config:
    """A full ppddpm Config for an original file (network from keys, schedule from options)."""
    options = dict(options or {})
    model = legacy_model_config(state, source)
    if len(betas) != model.num_steps:
        raise CheckpointError(f"{source}: has {len(betas)} betas but its time table has "
                              f"{model.num_steps} rows; the file is inconsistent")
    cfg = Config()
    cfg.model = model
    is_unet = model.arch == "legacy_unet"
    cfg.data = DataConfig(dataset="cifar10" if is_unet else "folder",
                          data_dir=str(options.get("data_dir", "./datasets/cifar10" if is_unet
                                                   else "./datasets/celeba_hq")),
                          image_size=model.resolution)
    # The original trained eps-prediction with the plain MSE ("noisepred"); ppddpm's
    # default fixed-large variance is used for sampling (the original's fixed-small is
    # a sampler choice: diffusion.var_type=fixed_small).
    cfg.diffusion = DiffusionConfig(
        beta_schedule=str(options.get("beta_schedule", "linear")),
        beta_start=float(options.get("beta_start", float(betas[0]))),
        beta_end=float(options.get("beta_end", float(betas[-1]))),
        num_diffusion_steps=len(betas), mean_type="eps", var_type="fixed_large", loss_type="mse")
    train = cfg.train
    train.ckpt_prefix = "cifar10" if is_unet else "celeba_hq"
    train.lr_decay = "constant" if is_unet else "linear"
    for key in ("batchsize", "training_iters", "lr", "warmup_steps", "ema_decay",
                "sample_interval", "ckpt_interval"):
        if key in options:
            try:
                setattr(train, key, type(getattr(train, key))(options[key]))
            except (TypeError, ValueError):
                raise CheckpointError(f"{source}: option {key}={options[key]!r} is not a "
                                      f"valid {type(getattr(train, key)).__name__}") from None
    cfg.sample.sample_postfix = str(options.get("sample_postfix", cfg.sample.sample_postfix))
    try:
        validate(cfg)
    except ConfigError as exc:
        raise CheckpointError(f"{source}: its options do not make a valid config: {exc}") from None
    return cfg


def original_weights(obj: Mapping, source: str, use_ema: bool = True) -> Tuple[Mapping, str]:
    """(state_dict, entry name): EMA weights when present and wanted."""
    for key in (("model_ema", "model") if use_ema else ("model",)):
        if isinstance(obj.get(key), Mapping):
            return obj[key], key
    raise CheckpointError(f"{source}: has no {'model_ema or ' if use_ema else ''}model entry "
                          f"holding weights (entries: {sorted(obj)})")


def convert_original(src_path: str, use_ema: bool = True) -> dict:
    """An original training or inference ``.pdparam`` -> a ppddpm inference file dict.

    The weights are checked name for name and shape for shape against the network
    rebuilt from them, so a damaged file fails here, not at sampling time.
    """
    obj = load_checkpoint(src_path)
    if "config" in obj:
        raise CheckpointError(f"{src_path} is already a ppddpm file (it has a 'config'); use "
                              "`--from training` for a training checkpoint, or load it directly")
    state, entry = original_weights(obj, src_path, use_ema)
    betas = legacy_betas(obj, src_path)
    cfg = legacy_config(state, obj.get("options"), betas, src_path)
    model = build_model(cfg.model)
    load_state_strict(model, state, f"{src_path} [{entry}]",
                      expected=f"{cfg.model.arch} as read off the file's own keys")
    options = dict(obj.get("options") or {})
    options["converted_from"] = {"format": "original", "path": str(src_path), "entry": entry}
    return {"model": {k: v.numpy() for k, v in model.state_dict().items()}, "betas": betas,
            "options": options, "config": cfg.to_dict(), "version": __version__}
