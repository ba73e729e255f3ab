"""The run's Config from the command line: the YAML (or a checkpoint's config), the script's
preset, ``-o`` overrides, then flags; checked whole before anything is built."""
from __future__ import annotations

from typing import Optional, Sequence

from ..config import Config, apply_overrides, load_config, set_value, validate
from ..diffusion import check_schedule
from .args import explicit_settings, overrides_from_args


def resolve_config(args, default_config: str, preset: Sequence[str] = (),
                   base: Optional[Config] = None) -> Config:
    """YAML (or ``base``, e.g. a checkpoint's config), then the script's preset (e.g. the DDIM
    sampler), then -o overrides, then flags."""
    cfg = base if base is not None else load_config(args.config or default_config)
    apply_overrides(cfg, list(preset) + list(args.override), check=False)  # checked with the flags
    for key, value in overrides_from_args(args):
        set_value(cfg, key, value)
    validate(cfg)
    check_schedule(cfg.diffusion)
    # "{sampler}_cifar10_test" names DDPM and DDIM samples apart, as the original did.
    cfg.sample.sample_postfix = cfg.sample.sample_postfix.replace("{sampler}", cfg.sample.sampler)
    fill_dataset_in_folders(cfg)
    return cfg


FOLDER_KEYS = (("train", "ckpt_dir"), ("train", "log_dir"), ("sample", "sample_dir"))


def fill_dataset_in_folders(cfg: Config) -> None:
    """"{dataset}" in an output folder is the data set's name: toy.yaml's
    ./toy_out/{dataset}/ckpts gives every data set its own run folder."""
    for section, key in FOLDER_KEYS:
        sub = getattr(cfg, section)
        setattr(sub, key, getattr(sub, key).replace("{dataset}", cfg.data.dataset))


def expected_model(args, cfg: Config) -> Optional[dict]:
    """The network fields the user typed (-o model.*, --image_size), as resolved, for the
    weights file to be checked against; None when none was typed (take the file's)."""
    typed = [key.split(".", 1)[1] for key in explicit_settings(args) if key.startswith("model.")]
    return {name: getattr(cfg.model, name) for name in typed} or None
