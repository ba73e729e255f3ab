"""Data sets and loaders. ``build_dataset(data_cfg)`` picks the set named by data.dataset.

Every data set yields (float32 CHW image in [-1,1], int64 label) numpy pairs and
declares what it is: ``channels``, ``image_size`` and ``class_names`` (a list of
names that labels index, or None for an unlabelled set, whose labels are -1;
the toy curves keep label 0); ``data.spec`` checks the model config against it.
It accepts int or ``(index, flip)`` keys; ``build_loader`` (see loader.py) makes
the order and flips a pure function of (seed, epoch) for exact resume.
Other modules (e.g. toy sets) can add themselves with ``register_dataset``.
"""
from __future__ import annotations

import os
from typing import Callable, Dict

from ..config import ConfigError, DataConfig, label
from .celeba64 import CelebA64Dataset
from .cifar10 import Cifar10Dataset
from .folders import ImageFolderDataset
from .loader import EpochBatchSampler, build_loader, epoch_permutation, flip_bits
from .mnist import MnistDataset
from .toy import toy_factories

__all__ = ["build_dataset", "build_loader", "register_dataset", "EpochBatchSampler",
           "epoch_permutation", "flip_bits", "DATASETS"]


def _cifar10(cfg: DataConfig):
    if cfg.image_size != 32:
        raise ConfigError(f"data.image_size={cfg.image_size}, but CIFAR-10 images are 32x32; "
                          "set data.image_size=32 (and model.resolution=32)")
    return Cifar10Dataset(cfg.data_dir, train=True, random_flip=cfg.random_flip,
                          download=cfg.download)


def _folder(cfg: DataConfig):
    return ImageFolderDataset(cfg.data_dir, cfg.image_size, random_flip=cfg.random_flip,
                              channels=cfg.channels, class_level=cfg.class_level)


def _mnist(name: str):
    def build(cfg: DataConfig):
        return MnistDataset(cfg.data_dir, name, train=True, random_flip=cfg.random_flip,
                            download=cfg.download, image_size=cfg.image_size)
    return build


def _celeba64(cfg: DataConfig):
    return CelebA64Dataset(cfg.data_dir, cfg.image_size, random_flip=cfg.random_flip,
                           channels=cfg.channels)


DATASETS: Dict[str, Callable[[DataConfig], object]] = {
    "cifar10": _cifar10,
    "folder": _folder,
    "celeba_hq": _folder,
    "mnist": _mnist("mnist"),
    "fashion_mnist": _mnist("fashion_mnist"),
    "celeba64": _celeba64,
    **toy_factories(),   # the 2-D sets of data/toy.py
}


def register_dataset(name: str, factory: Callable[[DataConfig], object]) -> None:
    """Make ``data.dataset=name`` build ``factory(data_cfg)``."""
    DATASETS[name] = factory


# data sets whose data_dir may be an archive file itself (CelebA's img_align_celeba.zip)
ARCHIVE_DATA_DIRS = {"celeba64": (".zip",)}


def build_dataset(data_cfg: DataConfig):
    try:
        factory = DATASETS[data_cfg.dataset]
    except KeyError:
        raise ConfigError(f"data.dataset={data_cfg.dataset!r} is not known; choose one of "
                          f"{sorted(DATASETS)}") from None
    archives = ARCHIVE_DATA_DIRS.get(data_cfg.dataset, ())
    if (data_cfg.data_dir and os.path.isfile(data_cfg.data_dir)
            and not data_cfg.data_dir.lower().endswith(archives)):
        raise ConfigError(f"{label('data.data_dir')} {data_cfg.data_dir!r} is a file, not a "
                          "folder; give the folder that holds the data set (or where it is to "
                          "be downloaded)")
    return factory(data_cfg)
