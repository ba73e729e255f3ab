"""mmgeneration's Improved-DDPM checkpoints (``ddpm_cosine_hybird_timestep-4k_*.pth``) ->
ppddpm inference files, on the adm network.

mmgeneration's DenoisingUnet is improved-diffusion's UNet under its own names (its
configs/improved_ddpm; mmgen/models/architectures/ddpm): the same blocks in the same order,
a legacy-order multi-head attention, the [cos | sin] embedding of t * 1000 / T. The file is
an mmcv training checkpoint {"meta", "state_dict", "optimizer"}; the EMA network's weights
are "denoising_ema.*". The network's sizes are read off the weights; what the weights do
not show (T, the schedule, rescaled timesteps, heads, dropout) is read as text from the
config the checkpoint's meta stores (regular expressions, nothing is run), with the
improved_ddpm configs' values when absent.
"""
from __future__ import annotations

import re
from typing import Dict, Mapping

import numpy as np

from ..config import Config, ConfigError, validate
from ..diffusion.schedules import check_schedule
from ..errors import CheckpointError
from ..io.pth_reader import read_pth_tree
from ..version import __version__
from .adm import to_ppddpm_state

EMA_PREFIX, RAW_PREFIX = "denoising_ema.", "denoising."
# mmgeneration's name pieces -> upstream's (applied in order, each once per key)
RENAMES = [
    (r"^time_embedding\.blocks\.", "time_embed."),
    (r"^label_embedding\.", "label_emb."),
    (r"^in_blocks\.", "input_blocks."),
    (r"^mid_blocks\.", "middle_block."),
    (r"^out_blocks\.", "output_blocks."),
    (r"\.conv_1\.", ".in_layers."),
    (r"\.norm_with_embedding\.norm\.", ".out_layers.0."),
    (r"\.norm_with_embedding\.embedding_layer\.", ".emb_layers."),
    (r"\.conv_2\.2\.", ".out_layers.3."),
    (r"\.shortcut\.", ".skip_connection."),
    (r"\.proj\.", ".proj_out."),
    (r"\.downsample\.", ".op."),
    (r"^out\.gn\.", "out.0."),
    (r"^out\.conv\.", "out.2."),
]
# The improved_ddpm configs' settings the weights do not show (configs/_base_/models/
# improved_ddpm/ddpm_{32x32,64x64}.py)
CONFIG_DEFAULTS = {"num_timesteps": 4000, "betas": "cosine", "use_rescale_timesteps": True,
                   "num_heads": 4, "dropout": 0.0}
CONFIG_PATTERNS = {"num_timesteps": r"num_timesteps\s*=\s*(\d+)",
                   "betas": r"betas_cfg\s*=\s*dict\(\s*type\s*=\s*['\"](\w+)['\"]",
                   "use_rescale_timesteps": r"use_rescale_timesteps\s*=\s*(True|False)",
                   "num_heads": r"num_heads\s*=\s*(\d+)",
                   "dropout": r"dropout\s*=\s*([0-9.]+)"}


def upstream_names(state: Mapping) -> Dict[str, np.ndarray]:
    out = {}
    for key, value in state.items():
        for pattern, repl in RENAMES:
            key = re.sub(pattern, repl, key, count=1)
        out[key] = value
    return out


def config_settings(meta) -> dict:
    """T, schedule, rescaling, heads and dropout from the stored config's text."""
    text = meta.get("config") if isinstance(meta, Mapping) else None
    found = dict(CONFIG_DEFAULTS)
    if isinstance(text, str):
        for key, pattern in CONFIG_PATTERNS.items():
            match = re.search(pattern, text)
            if match:
                raw = match.group(1)
                found[key] = (raw == "True" if key == "use_rescale_timesteps" else
                              float(raw) if key == "dropout" else
                              int(raw) if raw.isdigit() else raw)
    if found["betas"] not in ("cosine", "linear"):
        raise ConfigError(f"the checkpoint's config has betas_cfg type {found['betas']!r}; "
                          "ppddpm reads mmgeneration's cosine and linear schedules")
    return found


def read_mmgen(src_path: str, use_ema: bool = True):
    obj = read_pth_tree(src_path)
    state = obj.get("state_dict") if isinstance(obj, Mapping) else None
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{src_path} has no 'state_dict': not an mmgeneration checkpoint")
    prefix = EMA_PREFIX if use_ema else RAW_PREFIX
    weights = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not weights:
        raise CheckpointError(f"{src_path} has no '{prefix}*' weights (its entries start "
                              f"with {sorted({k.split('.')[0] for k in state})}): not an "
                              "mmgeneration Improved-DDPM checkpoint")
    return upstream_names(weights), obj.get("meta") or {}


def mmgen_config(state: Mapping, settings: dict) -> Config:
    """The adm network the weights show, and the diffusion of the stored config."""
    cfg = Config()
    m, d = cfg.model, cfg.diffusion
    blocks = sorted({int(k.split(".")[1]) for k in state if k.startswith("input_blocks.")})
    resblock = lambda i: f"input_blocks.{i}.0.in_layers.2.weight" in state  # noqa: E731
    n = next((i - 1 for i in blocks[1:] if not resblock(i)), len(blocks) - 1)  # per level
    if n < 1:
        raise CheckpointError("the weights have no residual blocks after input_blocks.0")
    levels = len(blocks) // (n + 1)       # conv, n per level, a downsampler between levels
    widths = [int(np.shape(state[f"input_blocks.{1 + lv * (n + 1)}.0.in_layers.2.weight"])[0])
              for lv in range(levels)]
    base = int(np.shape(state["input_blocks.0.0.weight"])[0])
    m.arch, m.ch, m.ch_mult, m.num_res_blocks = "adm", base, [w // base for w in widths], n
    m.num_heads, m.dropout = settings["num_heads"], settings["dropout"]
    emb = state.get("input_blocks.1.0.emb_layers.1.weight")
    m.use_scale_shift_norm = emb is not None and int(np.shape(emb)[0]) == 2 * widths[0]
    m.learn_sigma = int(np.shape(state["out.2.weight"])[0]) == 6
    if "label_emb.weight" in state:
        m.num_classes = int(np.shape(state["label_emb.weight"])[0])
    m.norm_eps, m.rescale_timesteps = 1e-5, settings["use_rescale_timesteps"]
    size = {(1, 2, 2, 2): 32, (1, 2, 3, 4): 64, (1, 1, 2, 2, 4, 4): 256}.get(tuple(m.ch_mult))
    if size is None:
        raise ConfigError(f"channel factors {m.ch_mult} are not one of mmgeneration's "
                          "image sizes (32: 1,2,2,2; 64: 1,2,3,4; 256: 1,1,2,2,4,4)")
    m.resolution = cfg.data.image_size = size
    attn, res = [], size
    for level in range(len(widths)):
        if f"input_blocks.{1 + level * (n + 1)}.1.qkv.weight" in state:
            attn.append(res)
        res //= 2
    m.attn_resolutions = attn
    cfg.data.dataset = "cifar10" if size == 32 else "folder"
    T = settings["num_timesteps"]
    d.num_diffusion_steps, d.beta_schedule = T, settings["betas"]
    d.beta_start, d.beta_end = 1e-4 * 1000 / T, 0.02 * 1000 / T
    d.var_type = "learned_range" if m.learn_sigma else "fixed_large"
    d.loss_type = "hybrid" if m.learn_sigma else "mse"
    return cfg


def convert_mmgen(src_path: str, checked_state, use_ema: bool = True) -> dict:
    """An mmgeneration Improved-DDPM .pth -> an inference-file dict (EMA weights)."""
    state, meta = read_mmgen(src_path, use_ema)
    cfg = mmgen_config(state, config_settings(meta))
    validate(cfg)
    weights = checked_state(cfg, to_ppddpm_state(state, cfg), str(src_path))
    options = {"converted_from": {"format": "mmgen", "path": str(src_path),
                                  "entry": "denoising_ema" if use_ema else "denoising"}}
    return {"model": weights, "betas": check_schedule(cfg.diffusion), "options": options,
            "config": cfg.to_dict(), "version": __version__}
