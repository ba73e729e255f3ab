"""A weights file made for another data set than the run script's config: say so in one line,
sample it anyway (its stored config builds the right network), and name the outputs after
the file, so that one script's samples never silently replace another script's.

Example: ``run_celeba_hq_ddim.py --pretrained_path ddpm_cifar10_i800000_ema.pdparam`` draws
CIFAR-10 images into ``sample_ddim_cifar10_test.png``, not over ``sample_ddim_celeba_hq_test.png``.
"""
from __future__ import annotations

import os
from typing import Optional

from ..config import Config
from ..config.names import SAMPLERS

# Data set names that say only "some folder of images": compared by image shape alone.
GENERIC_DATASETS = ("folder",)


def describe(cfg: Config) -> str:
    m = cfg.model
    return f"{cfg.data.dataset} ({m.in_channels}x{m.resolution}x{m.resolution})"


def other_dataset(file_cfg: Config, script_cfg: Config) -> bool:
    """Whether the file was trained on another data set or image shape than the script's."""
    shape = lambda c: (c.model.in_channels, c.model.resolution)
    names = {file_cfg.data.dataset, script_cfg.data.dataset}
    return shape(file_cfg) != shape(script_cfg) or (
        len(names) > 1 and not names & set(GENERIC_DATASETS))


def postfix_template(postfix: str) -> str:
    """A stored sample_postfix with its leading sampler name put back as ``{sampler}``: files
    store it filled (``ddpm_cifar10_test``), and another sampler must not write that name."""
    if "{sampler}" in postfix:
        return postfix
    for name in sorted(SAMPLERS, key=len, reverse=True):   # dpm_solver++ before dpm_solver
        if postfix.startswith(name + "_"):
            return "{sampler}" + postfix[len(name):]
    return postfix


def postfix_for_file(file_cfg: Config, script_cfg: Config, pretrained_path: str) -> str:
    """The file's own script's sample_postfix for this sampler; if that equals the script's,
    the script's with the file's name appended."""
    sampler = script_cfg.sample.sampler
    own = postfix_template(file_cfg.sample.sample_postfix).replace("{sampler}", sampler)
    if own != script_cfg.sample.sample_postfix:
        return own
    stem = os.path.splitext(os.path.basename(pretrained_path))[0]
    return f"{script_cfg.sample.sample_postfix}_{stem}"


def match_file_to_script(file_cfg: Config, script_cfg: Config, pretrained_path: str,
                         postfix_given: bool) -> Optional[str]:
    """For a file of another data set: a one-line note, and (unless --sample_postfix was
    given) ``script_cfg.sample.sample_postfix`` set to the file's. None when they match."""
    if not other_dataset(file_cfg, script_cfg):
        return None
    where = ""
    if not postfix_given:
        script_cfg.sample.sample_postfix = postfix_for_file(file_cfg, script_cfg, pretrained_path)
        where = f"; the outputs are named {script_cfg.sample.sample_postfix!r} after the file"
    return (f"note: {pretrained_path} is a model of {describe(file_cfg)}, not of this "
            f"script's {describe(script_cfg)}; sampling it as its own config says{where}")
