"""Two-dimensional toy data sets, generated in code from a seed (no download).

Every set lies inside [-1, 1]^2 (the data range the samplers clip x0 to). A point is
stored as a 2-channel 1x1 "image" [2, 1, 1], so the diffusion code, which works on
NCHW tensors and averages over the non-batch dimensions, runs unchanged; the model
config for these sets is in_channels = out_channels = 2, resolution = 1.

  scurve     the S-curve of the original reproduction's demo (sklearn make_s_curve's
             x/z plane, noise 0.1, scaled by 0.45)
  swissroll  a 2-D Swiss roll (t cos t, t sin t), t in [1.5 pi, 4.5 pi], scaled to radius 0.94
  gaussian8  8 Gaussians on a circle, the ring of Metz et al. 2017 (radius 2, here / 2.828)
  gaussian25 25 Gaussians on a 5x5 grid {-2..2}^2, std 0.05, as in VEEGAN/PacGAN, / 2.828
  moons      sklearn-style two interleaving half circles, noise 0.05, centred and scaled

For the mixtures, ``mixture_spec(name)`` gives the means and the common std, which the
quality figures in ``ppddpm.metrics2d`` use. Training points come from ``split="train"``;
metrics compare with fresh points from ``split="eval"`` (an independent stream).
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import numpy as np

from ..errors import DatasetError

TOY_DATASETS = ("scurve", "swissroll", "gaussian8", "gaussian25", "moons")
TRAIN_POINTS = 100_000   # size of the training set (~50 epochs of a 2-minute demo)
_SCALE = 2.828           # the mixtures' usual division, which puts them inside [-1, 1]
_SPLITS = {"train": 0, "eval": 1}


def toy_class_names(name: str) -> Optional[List[str]]:
    """The names of the labels of ``sample_toy``: the mixtures' modes ("mode0", ...), the
    moons' halves ("upper" is the outer arc, label 0), None for the unlabelled curves."""
    spec = mixture_spec(name)
    if spec is not None:
        return [f"mode{k}" for k in range(len(spec[0]))]
    return ["upper", "lower"] if name == "moons" else None


def is_toy(name: str) -> bool:
    return name in TOY_DATASETS


def mixture_spec(name: str) -> Optional[Tuple[np.ndarray, float]]:
    """(means [K, 2], std) of a Gaussian mixture set, or None for the other sets."""
    if name == "gaussian8":
        angles = np.arange(8) * (2 * math.pi / 8)
        means = 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        return means / _SCALE, 0.05 / _SCALE
    if name == "gaussian25":
        g = np.arange(-2, 3, dtype=np.float64)
        means = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)
        return means / _SCALE, 0.05 / _SCALE
    return None


def _rng(seed: int, split: str, name: str) -> np.random.Generator:
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {list(_SPLITS)}, got {split!r}")
    tag = TOY_DATASETS.index(name)
    return np.random.default_rng([int(seed), _SPLITS[split], tag])


def sample_toy(name: str, n: int, seed: int = 0, split: str = "train"):
    """``n`` points of set ``name`` -> (float32 [n, 2], int64 labels [n]).

    Labels are the mode index for the mixtures and the component (moon) for moons,
    else 0. The result is a pure function of (name, n, seed, split).
    """
    if not is_toy(name):
        raise DatasetError(f"unknown toy data set {name!r}; choose one of {list(TOY_DATASETS)}")
    rng = _rng(seed, split, name)
    labels = np.zeros(n, dtype=np.int64)
    if name == "scurve":
        t = 3 * math.pi * (rng.random(n) - 0.5)
        pts = np.stack([np.sin(t), np.sign(t) * (np.cos(t) - 1)], axis=1)
        pts = (pts + 0.1 * rng.standard_normal((n, 2))) * 0.45
    elif name == "swissroll":
        t = 1.5 * math.pi * (1 + 2 * rng.random(n))
        pts = np.stack([t * np.cos(t), t * np.sin(t)], axis=1)
        pts = (pts + 0.3 * rng.standard_normal((n, 2))) / 15.0
    elif name == "moons":
        labels = rng.integers(0, 2, n)
        theta = math.pi * rng.random(n)
        outer = np.stack([np.cos(theta), np.sin(theta)], axis=1)
        inner = np.stack([1 - np.cos(theta), 0.5 - np.sin(theta)], axis=1)
        pts = np.where(labels[:, None] == 0, outer, inner)
        pts = (pts + 0.05 * rng.standard_normal((n, 2)) - [0.5, 0.25]) * 0.6
    else:
        means, std = mixture_spec(name)
        labels = rng.integers(0, len(means), n)
        pts = means[labels] + std * rng.standard_normal((n, 2))
    return pts.astype(np.float32), labels.astype(np.int64)


class ToyDataset:
    """A fixed set of ``n`` points; item i is (float32 [2, 1, 1], int64 label).

    Declares channels 2, image_size 1 and ``class_names`` (``toy_class_names``; the
    curves are unlabelled and keep label 0).

    Keys may be an int or the loader's ``(index, flip)`` pair; flips are ignored,
    since mirroring would change a 2-D distribution.
    """

    def __init__(self, name: str, n: int = TRAIN_POINTS, seed: int = 0):
        self.name = name
        self.channels, self.image_size, self.class_names = 2, 1, toy_class_names(name)
        self.points, self.labels = sample_toy(name, n, seed, "train")
        self._items = self.points.reshape(n, 2, 1, 1)

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, key):
        index = int(key[0]) if isinstance(key, (tuple, list)) else int(key)
        return self._items[index], self.labels[index]


def toy_factories() -> dict:
    """data.dataset name -> builder of each 2-D set, for the data sets' registry."""
    return {name: (lambda cfg, name=name: ToyDataset(name)) for name in TOY_DATASETS}
