"""The checkpoints DDIM's code samples from (ermongroup/ddim, models/diffusion.py) onto
ppddpm's official DDPM UNet (arch ``unet``): the same network as Ho et al.'s, under the
names of the PyTorch port (pesser/pytorch_diffusion).

Two layouts, read without PyTorch through the allow-list unpickler (io/pth_reader.py):
  * a flat state dict: Ho's converted models that ``--use_pretrained`` downloads
    (``ema_diffusion_cifar10_model/model-790000.ckpt``, LSUN church/bedroom/cat);
  * DDIM's training checkpoint ``ckpt.pth``: ``[model, optimizer, epoch, step, ema]`` with
    DataParallel's ``module.`` names (DDIM's CelebA 64 model); the EMA weights are the
    last entry.

ch, ch_mult, num_res_blocks and the attention levels are read off the shapes. The image size
is not in the weights: every DDIM config puts attention at 16x16, so the level holding
attention fixes it (32 for CIFAR-10, 64 for CelebA, 256 for LSUN). Dropout and the
reverse variance come from DDIM's configs/*.yml for the published networks (recognised by
ch and ch_mult), the diffusion from all of them: linear betas 1e-4..0.02, T = 1000.
"""
from __future__ import annotations

import re
from typing import Dict, List, Mapping, NamedTuple, Optional, Tuple

import numpy as np

from ..config import Config, ConfigError, ModelConfig
from ..errors import CheckpointError
from ..io.pth_reader import read_pth_tree

ATTN_RESOLUTION = 16   # attn_resolutions: [16, ] in every config of ermongroup/ddim


class DdimNetwork(NamedTuple):
    """What DDIM's config says beside the weights, for one published network."""
    name: str          # DDIM's config / data set
    resolution: int
    dropout: float
    var_type: str
    dataset: str       # ppddpm's data.dataset


# (ch, ch_mult) -> the config of ermongroup/ddim that trained or samples it.
PUBLISHED = {
    (128, (1, 2, 2, 2)): DdimNetwork("cifar10", 32, 0.1, "fixed_large", "cifar10"),
    (128, (1, 2, 2, 2, 4)): DdimNetwork("celeba", 64, 0.1, "fixed_large", "celeba64"),
    # church.yml and bedroom.yml (LSUN cat, which has no config there, is the same network)
    (128, (1, 1, 2, 2, 4, 4)): DdimNetwork("lsun", 256, 0.0, "fixed_small", "folder"),
}


def ddim_state(obj, source: str, use_ema: bool = True) -> Tuple[Dict[str, np.ndarray], str]:
    """(flat state dict without ``module.``, which entry) of a loaded DDIM-code file."""
    if isinstance(obj, (list, tuple)):
        if len(obj) not in (4, 5) or not all(isinstance(obj[i], Mapping) for i in (0, 1)):
            raise CheckpointError(f"{source} holds a list of {len(obj)} entries, not DDIM's "
                                  "checkpoint [model, optimizer, epoch, step(, ema)]")
        if use_ema and len(obj) == 5:
            state, entry = obj[4], "ema (entry 4)"
        else:
            state, entry = obj[0], "model (entry 0)"
    elif isinstance(obj, Mapping):
        state, entry = obj, "state dict"
    else:
        raise CheckpointError(f"{source} holds a {type(obj).__name__}, not a state dict or "
                              "DDIM's checkpoint list")
    flat = {}
    for key, value in state.items():
        if not isinstance(value, np.ndarray):
            raise CheckpointError(f"{source} [{entry}]: entry {key!r} is a "
                                  f"{type(value).__name__}, not a tensor")
        flat[key[len("module."):] if key.startswith("module.") else key] = value
    if "temb.dense.0.weight" not in flat:
        raise CheckpointError(f"{source} [{entry}] is not a network of DDIM's code (no "
                              f"'temb.dense.0.weight'; first keys: {list(flat)[:4]})")
    return flat, entry


def _indices(state, pattern: str) -> List[int]:
    return sorted({int(m.group(1)) for k in state for m in [re.match(pattern, k)] if m})


def ddim_model_config(shapes: Mapping[str, Tuple[int, ...]],
                      source: str) -> Tuple[ModelConfig, Optional[DdimNetwork]]:
    """The ModelConfig of a DDIM-code network from its {key: shape}, and the published
    network it is (None for another size)."""
    ch = int(shapes["conv_in.weight"][0])
    levels = _indices(shapes, r"down\.(\d+)\.")
    ch_mult = [int(shapes[f"down.{i}.block.0.conv1.weight"][0]) // ch for i in levels]
    nres = len(_indices(shapes, r"down\.0\.block\.(\d+)\."))
    if any(f"down.{i}.downsample.conv.weight" not in shapes for i in levels[:-1]):
        raise ConfigError(f"{source}: a network with resamp_with_conv: false (resampling "
                          "without convolutions), which ppddpm's UNet does not have")
    extra = [k for k in shapes if k == "logvar"]
    if extra:
        raise ConfigError(f"{source}: a network of model.type 'bayesian' (a learned logvar), "
                          "which ppddpm's UNet does not have; DDIM's published models are "
                          "type 'simple'")
    attn = [i for i in levels if f"down.{i}.attn.0.q.weight" in shapes]
    if len(attn) != 1:
        raise ConfigError(f"{source}: attention at levels {attn}; the image size is read off "
                          f"the one level with attention at {ATTN_RESOLUTION}x{ATTN_RESOLUTION}, "
                          "as in every DDIM config")
    known = PUBLISHED.get((ch, tuple(ch_mult)))
    resolution = ATTN_RESOLUTION * 2 ** attn[0]
    cfg = ModelConfig(arch="unet", ch=ch, ch_mult=ch_mult, num_res_blocks=nres,
                      attn_resolutions=[ATTN_RESOLUTION],
                      dropout=known.dropout if known else 0.0,
                      in_channels=int(shapes["conv_in.weight"][1]),
                      out_channels=int(shapes["conv_out.weight"][0]), resolution=resolution,
                      norm_groups=32, norm_eps=1e-6, time_freq_shift=1.0)
    return cfg, known


_LINEAR = re.compile(r"(^temb\.[02]|\.temb_proj)\.weight$")


def ppddpm_name(key: str) -> str:
    """DDIM's parameter name -> ppddpm's (q/k/v keep their names, merged later)."""
    key = re.sub(r"^temb\.dense\.0\.", "temb.0.", key)
    key = re.sub(r"^temb\.dense\.1\.", "temb.2.", key)
    return key.replace(".nin_shortcut.", ".shortcut.")


def map_state(state: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """DDIM's tensors as ppddpm's: Linear weights transposed, 1x1-conv attention weights
    as Linear ones, q/k/v concatenated into one qkv Linear (q first)."""
    out, qkv = {}, {}
    for key, arr in state.items():
        name = ppddpm_name(key)
        arr = np.asarray(arr, dtype=np.float32)
        m = re.fullmatch(r"(.+\.attn(?:\.\d+|_1))\.(q|k|v|proj_out)\.(weight|bias)", name)
        if m and m.group(3) == "weight":
            arr = arr.reshape(arr.shape[:2]).T       # [out, in, 1, 1] -> paddle [in, out]
        elif _LINEAR.search(name):
            arr = arr.T                               # torch Linear [out, in] -> [in, out]
        if m and m.group(2) in "qkv":
            qkv.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = arr
            continue
        out[name] = arr
    for (base, leaf), parts in qkv.items():
        if sorted(parts) == ["k", "q", "v"]:
            out[f"{base}.qkv.{leaf}"] = np.concatenate([parts[c] for c in "qkv"], axis=-1)
        else:   # left for the strict loader to name as unexpected
            out.update({f"{base}.{c}.{leaf}": a for c, a in parts.items()})
    return out


def ddim_file(src_path: str, use_ema: bool = True) -> Tuple[Dict[str, np.ndarray], Config, dict]:
    """(ppddpm state, Config, options) of a DDIM-code checkpoint; the caller checks the
    state against the network the Config builds."""
    obj = read_pth_tree(src_path)
    state, entry = ddim_state(obj, src_path, use_ema)
    model_cfg, known = ddim_model_config({k: v.shape for k, v in state.items()}, src_path)
    cfg = Config()
    cfg.model = model_cfg
    cfg.data.image_size = model_cfg.resolution
    cfg.data.dataset = known.dataset if known else "folder"
    if cfg.data.dataset != "cifar10":
        cfg.data.data_dir = f"./datasets/{known.name if known else 'images'}"
    cfg.diffusion.beta_schedule = "linear"
    cfg.diffusion.beta_start, cfg.diffusion.beta_end = 1e-4, 0.02
    cfg.diffusion.num_diffusion_steps = 1000
    cfg.diffusion.var_type = known.var_type if known else "fixed_large"
    options = {"converted_from": {"format": "ddim", "path": str(src_path), "entry": entry,
                                  "ddim_config": known.name if known else None}}
    return map_state(state), cfg, options
