"""What a resumed run may change: the checkpoint's config is the base of the run, and the
flags and ``-o`` of the command line apply on top of it (cli.config_for_resume). Training
length, learning rate, intervals, folders and sampling settings may change; the network,
the diffusion process and the image shape may not, since the weights, the optimizer state
and the betas were made for them."""
from __future__ import annotations

import dataclasses
from typing import Mapping

from ..config import Config, ConfigError

PINNED_SECTIONS = ("model", "diffusion")
PINNED_KEYS = ("data.image_size", "data.channels")
FREE_KEYS = {"model.dropout"}   # not part of the weights (convert/pretrained.py's _NOT_IN_WEIGHTS)


def _value(cfg: Config, key: str):
    section, name = key.split(".", 1)
    return getattr(getattr(cfg, section), name, None)


def pinned_keys(cfg: Config) -> list:
    keys = [f"{s}.{f.name}" for s in PINNED_SECTIONS for f in dataclasses.fields(getattr(cfg, s))]
    return [k for k in keys + list(PINNED_KEYS) if k not in FREE_KEYS]


def check_resume_overrides(file_cfg: Config, cfg: Config, explicit: Mapping[str, str],
                           source: str) -> None:
    """Raise a one-line ConfigError when ``cfg`` (the checkpoint's config with this command
    line's settings) changes a pinned key of ``file_cfg``; ``explicit`` maps each key the
    command line set to how it was typed, to name it."""
    changed = [k for k in pinned_keys(file_cfg) if _value(file_cfg, k) != _value(cfg, k)]
    if not changed:
        return
    typed = [k for k in changed if k in explicit]
    key = (typed or changed)[0]
    how = explicit[key] if typed else ", ".join(explicit.values()) or "the command line"
    raise ConfigError(
        f"cannot resume {source} with {how}: {key}: file has {_value(file_cfg, key)!r}, "
        f"expected {_value(cfg, key)!r}; resume builds the model and the diffusion from the "
        "checkpoint's config, so leave that setting out (or start a new run with --mode train)")
