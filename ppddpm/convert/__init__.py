"""Weight conversion into ppddpm inference files.

Each ``convert_*`` returns the inference-file dict {"model", "betas", "options",
"config", "version"} after checking the weights, name for name and shape for shape,
against the network its config builds; ``write_inference`` saves it atomically.
CLI: ``python -m ppddpm.convert --from SOURCE --src S [--flags "..."] --out F``.
"""
from __future__ import annotations

import os
import re
from typing import Mapping

import numpy as np

from ..config import Config, ConfigError, set_value, validate
from ..diffusion.schedules import get_beta_schedule
from ..errors import CheckpointError
from ..io.weights import load_checkpoint
from ..models import build_model
from ..models.state import as_numpy, load_state_strict
from ..version import __version__
from .adm import FAMILIES as ADM_FAMILIES
from .adm import convert_adm
from .ddim import ddim_file
from .diffusers import convert_diffusers_unet
from .mmgen import convert_mmgen
from .original import convert_original, detect_legacy_arch, legacy_config, legacy_model_config
from .pretrained import save_inference_file

__all__ = ["convert_original", "convert_training", "convert_diffusers", "convert_ddim", "convert_file",
           "write_inference", "detect_legacy_arch", "legacy_config", "legacy_model_config"]

SOURCES = ("original", "diffusers", "training", "ddim") + ADM_FAMILIES + ("mmgen",)
FLAG_SOURCES = ADM_FAMILIES   # sources whose network is described by upstream's --flags


def _checked_state(cfg: Config, state: Mapping, source: str) -> dict:
    """Build cfg's network, load ``state`` strictly, return its weights as numpy."""
    model = build_model(cfg.model)
    load_state_strict(model, state, source, expected=f"{cfg.model.arch} from the file's config")
    return {k: v.numpy() for k, v in model.state_dict().items()}


def convert_training(src_path: str, use_ema: bool = True) -> dict:
    """A ppddpm training checkpoint -> its (EMA by default) inference file dict."""
    obj = load_checkpoint(src_path)
    if "config" not in obj:
        raise CheckpointError(f"{src_path} has no 'config', so it is not a ppddpm training "
                              "checkpoint; for the original reproduction's files use "
                              "`--from original`")
    entry = "model_ema" if use_ema else "model"
    if not isinstance(obj.get(entry), Mapping):
        raise CheckpointError(f"{src_path} has no {entry!r} entry (entries: {sorted(obj)}); "
                              + ("is it already an inference file?" if use_ema else ""))
    try:
        cfg = Config.from_dict(obj["config"], strict=False)
    except ConfigError as exc:
        raise CheckpointError(f"{src_path}: the config stored in the file is invalid: {exc}") from None
    d = cfg.diffusion
    betas = (as_numpy(obj["betas"]).astype(np.float64) if obj.get("betas") is not None else
             get_beta_schedule(d.beta_schedule, d.num_diffusion_steps, d.beta_start, d.beta_end))
    state = _checked_state(cfg, obj[entry], f"{src_path} [{entry}]")
    options = dict(obj.get("options") or {})
    options["converted_from"] = {"format": "training", "path": str(src_path), "entry": entry,
                                 "ckpt_idx": obj.get("ckpt_idx")}
    return {"model": state, "betas": betas, "options": options, "config": cfg.to_dict(),
            "version": __version__}


def convert_diffusers(src_dir: str) -> dict:
    """A diffusers UNet2DModel folder (+ scheduler config) -> an inference file dict."""
    state, model_cfg, scheduler = convert_diffusers_unet(src_dir)
    cfg = Config()
    cfg.model = model_cfg
    cfg.data.image_size = model_cfg.resolution
    if model_cfg.resolution != 32:   # not CIFAR-10 (celebahq, church, ...): a folder of images
        cfg.data.dataset = "folder"
    # samples are named after the model's folder: sample_ddpm_ddpm-church-256.png
    name = os.path.basename(os.path.normpath(os.fspath(src_dir))) or "diffusers"
    cfg.sample.sample_postfix = "{sampler}_" + re.sub(r"[^A-Za-z0-9._-]+", "-", name)
    for key, value in (scheduler or {}).items():
        set_value(cfg, f"diffusion.{key}", value)
    validate(cfg)
    d = cfg.diffusion
    betas = get_beta_schedule(d.beta_schedule, d.num_diffusion_steps, d.beta_start, d.beta_end)
    checked = _checked_state(cfg, state, str(src_dir))
    options = {"converted_from": {"format": "diffusers", "path": str(src_dir)}}
    return {"model": checked, "betas": betas, "options": options, "config": cfg.to_dict(),
            "version": __version__}


def convert_ddim(src_path: str, use_ema: bool = True) -> dict:
    """A checkpoint of DDIM's code (Ho's models as .ckpt, DDIM's ckpt.pth) -> an inference
    file dict (convert/ddim.py)."""
    state, cfg, options = ddim_file(src_path, use_ema=use_ema)
    validate(cfg)
    d = cfg.diffusion
    betas = get_beta_schedule(d.beta_schedule, d.num_diffusion_steps, d.beta_start, d.beta_end)
    checked = _checked_state(cfg, state, f"{src_path} [{options['converted_from']['entry']}]")
    return {"model": checked, "betas": betas, "options": options, "config": cfg.to_dict(),
            "version": __version__}


def convert_file(source: str, src: str, use_ema: bool = True, flags: str = "") -> dict:
    """Dispatch on ``source`` (one of SOURCES); ``flags``: upstream's flags (FLAG_SOURCES)."""
    if source in ADM_FAMILIES:
        return convert_adm(src, source, flags, _checked_state)
    if source == "mmgen":
        return convert_mmgen(src, _checked_state, use_ema=use_ema)
    if source == "original":
        return convert_original(src, use_ema=use_ema)
    if source == "training":
        return convert_training(src, use_ema=use_ema)
    if source == "diffusers":
        return convert_diffusers(src)
    if source == "ddim":
        return convert_ddim(src, use_ema=use_ema)
    raise ConfigError(f"unknown conversion source {source!r}; choose one of {list(SOURCES)}")


def write_inference(result: Mapping, out_path: str) -> str:
    """Save a ``convert_*`` result as an inference file (atomically)."""
    return save_inference_file(out_path, result["model"], result["betas"], result["options"],
                               result["config"])
