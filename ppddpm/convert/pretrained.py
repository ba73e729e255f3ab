"""Inference files: write them atomically, and load any known weight file ready to sample.

``load_pretrained`` reads a ppddpm ``.safetensors`` inference file, or three kinds of
``paddle.save`` dicts (through the allow-list loader, ppddpm.safeload):
  * a ppddpm inference file: {"model", "betas", "options", "config", "version"};
  * a ppddpm training checkpoint (has "config"): its EMA weights ("model_ema");
  * a file of the original reproduction (no "config"): the network is recognised
    from its keys (legacy_unet / legacy_fpn), EMA weights are used when present.
The file's config rebuilds the network, so no architecture flag is ever repeated.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Mapping, NamedTuple, Optional, Tuple, Union

import numpy as np

from ..config import Config, ConfigError, ModelConfig
from ..diffusion import GaussianDiffusion
from ..errors import CheckpointError
from ..io.safetensors_io import (looks_like_safetensors, read_inference_safetensors,
                                 write_inference_safetensors)
from ..io.weights import atomic_save, load_checkpoint
from ..models import build_model
from ..models.state import as_numpy, load_state_strict
from ..version import __version__
from .original import legacy_betas, legacy_config, original_weights

# ModelConfig fields that do not change the weights (not compared by map_config).
_NOT_IN_WEIGHTS = {"dropout"}
# Fields the legacy networks do not read (the original fixes GroupNorm(32, eps 1e-5)
# and has a learned time table).
LEGACY_IGNORED = {"norm_groups", "norm_eps", "time_freq_shift"}


def save_inference_file(path: str, model_state: Mapping, betas, options: Optional[Mapping],
                        config: Union[Config, Mapping]) -> str:
    """Write {"model", "betas", "options", "config", "version"} to ``path`` atomically:
    a paddle.save pickle (loadable by the original reproduction), or a safetensors file
    (weights as tensors, the rest as JSON metadata) when ``path`` ends in .safetensors.

    ``model_state`` holds tensors or arrays (stored as numpy arrays, which the original
    reproduction's ``set_state_dict`` also accepts); ``config`` is a Config or its dict.
    """
    betas = as_numpy(betas).astype(np.float64)
    if betas.ndim != 1 or betas.size == 0:
        raise CheckpointError(f"betas must be a non-empty 1-D array, got shape {list(betas.shape)}")
    cfg = config.to_dict() if isinstance(config, Config) else dict(config)
    if "model" not in cfg:
        raise ConfigError("the config saved with an inference file needs a 'model' section")
    obj = {"model": {k: as_numpy(v) for k, v in model_state.items()}, "betas": betas,
           "options": dict(options or {}), "config": cfg, "version": __version__}
    if str(path).lower().endswith(".safetensors"):
        return write_inference_safetensors(path, obj)
    return atomic_save(obj, path)


def read_weight_file(path: str) -> dict:
    """The dict of a weight file: a .safetensors inference file, or a pickle-based
    .pdparam(s) read through the allow-list loader (never code from the file)."""
    if os.path.isfile(path) and looks_like_safetensors(path):
        return read_inference_safetensors(path)
    return load_checkpoint(path)


def expected_fields(value) -> Tuple[ModelConfig, Optional[set]]:
    """(a ModelConfig, the fields to compare: None for all) of a ``map_config``: a whole
    ModelConfig or Config, or a dict naming only the fields the caller cares about."""
    if isinstance(value, Config):
        return value.model, None
    if isinstance(value, ModelConfig):
        return value, None
    if isinstance(value, Mapping):
        return Config.from_dict({"model": dict(value)}).model, set(value)
    raise TypeError(f"map_config must be a ModelConfig, Config or dict, not {type(value).__name__}")


def compare_model_configs(found: ModelConfig, expected: ModelConfig, source: str,
                          fields: Optional[set] = None) -> None:
    """Raise CheckpointError naming every weight-relevant field that differs (of ``fields``
    only, when given: the ones a user typed)."""
    skip = set(_NOT_IN_WEIGHTS)
    if found.arch.startswith("legacy_"):
        skip |= LEGACY_IGNORED          # fixed in the original's networks
    else:
        skip.add("num_steps")          # only the legacy nets have a T-row time table
    if found.arch == "legacy_fpn":
        skip.add("attn_resolutions")   # the FPN has no attention
    diffs = []
    for f in dataclasses.fields(ModelConfig):
        if f.name in skip or (fields is not None and f.name not in fields):
            continue
        a, b = getattr(found, f.name), getattr(expected, f.name)
        if a != b:
            diffs.append(f"model.{f.name}: file has {a!r}, expected {b!r}")
    if diffs:
        raise CheckpointError(f"{source} holds a different {found.arch!r} network than expected: "
                              + "; ".join(diffs))


class WeightFile(NamedTuple):
    config: Config
    state: Mapping                 # the weights to load (EMA when the file has them)
    betas: Optional[np.ndarray]    # float64, or None: computed from config.diffusion
    source: str                    # "path [entry]", for error messages
    arch_note: str                 # where the architecture came from, for error messages


def resolve_weight_file(obj: Mapping, source: str) -> WeightFile:
    """Find the config, weights and betas in a loaded weight-file dict."""
    if "config" in obj:
        try:
            cfg = Config.from_dict(obj["config"], strict=False)
        except ConfigError as exc:
            raise CheckpointError(f"{source}: the config stored in the file is invalid: {exc}") from None
        entry = "model_ema" if isinstance(obj.get("model_ema"), Mapping) else "model"
        if not isinstance(obj.get(entry), Mapping):
            raise CheckpointError(f"{source} has no 'model' entry holding weights "
                                  f"(entries: {sorted(obj)}); is it a ppddpm checkpoint?")
        betas = None if obj.get("betas") is None else as_numpy(obj["betas"]).astype(np.float64)
        return WeightFile(cfg, obj[entry], betas, f"{source} [{entry}]",
                          f"{cfg.model.arch} from the config stored in the file")
    if "model" not in obj and "model_ema" not in obj:
        raise CheckpointError(f"{source} has no 'model' entry (entries: {sorted(obj)}); it is "
                              "neither a ppddpm nor an original-reproduction weight file")
    state, entry = original_weights(obj, source)
    betas = legacy_betas(obj, source)
    cfg = legacy_config(state, obj.get("options"), betas, source)
    return WeightFile(cfg, state, betas, f"{source} [{entry}]",
                      f"{cfg.model.arch} (original reproduction) as read off the file's keys")


def load_pretrained(path: str, map_config=None):
    """Load ``path`` -> (model in eval mode, GaussianDiffusion, Config).

    ``map_config`` (a ModelConfig, Config or dict) is the network the caller expects;
    a file holding a different one raises CheckpointError naming the differences. A dict
    names only the fields to compare, e.g. ``{"ch": 128}``.
    Legacy networks carry ``model.data_range`` (see ppddpm.models.legacy).
    """
    obj = read_weight_file(path)
    wf = resolve_weight_file(obj, path)
    cfg, betas = wf.config, wf.betas
    if map_config is not None:
        expected, fields = expected_fields(map_config)
        compare_model_configs(cfg.model, expected, path, fields)
    model = build_model(cfg.model)
    load_state_strict(model, wf.state, wf.source, expected=wf.arch_note)
    model.eval()
    if betas is not None and len(betas) != cfg.diffusion.num_diffusion_steps:
        raise CheckpointError(f"{path}: holds {len(betas)} betas but its config says "
                              f"num_diffusion_steps={cfg.diffusion.num_diffusion_steps}")
    diffusion = GaussianDiffusion.from_config(cfg.diffusion, betas=betas)
    return model, diffusion, cfg
