"""Reference statistics: compute once per data set, cache as .npz, read pytorch-fid's files.

A ppddpm statistics file is an .npz that pytorch-fid can read too:
  mu [2048] float64, sigma [2048, 2048] float64    (pytorch-fid's keys)
  features [N, 2048] float32                       (for precision/recall and KID)
  num_images, source (what was measured), inception_sha256 (the weights that measured it),
  is_mean / is_std (Inception Score of the reference images), ppddpm_stats_version.
A pytorch-fid file holds only mu and sigma: FID works, precision/recall and KID do not.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ...data import build_dataset
from ...data.cifar10 import load_cifar10_arrays
from ...io.files import atomic_write
from .features import ImageSource
from .fid import MetricError, feature_statistics
from .inception_score import inception_score

STATS_VERSION = 1


@dataclass
class ReferenceStats:
    mu: np.ndarray
    sigma: np.ndarray
    features: Optional[np.ndarray]
    num_images: Optional[int]
    source: str
    weights_sha256: Optional[str]   # None: unknown (e.g. a pytorch-fid file)
    path: str = ""


def save_stats(path: str, features: np.ndarray, source: str, weights_sha256: str,
               logits: Optional[np.ndarray] = None, keep_features: bool = True) -> ReferenceStats:
    mu, sigma = feature_statistics(features)
    entries = dict(mu=mu, sigma=sigma, num_images=np.int64(len(features)), source=np.str_(source),
                   inception_sha256=np.str_(weights_sha256),
                   ppddpm_stats_version=np.int64(STATS_VERSION))
    if keep_features:
        entries["features"] = np.asarray(features, np.float32)
    if logits is not None and len(logits) >= 10:
        entries["is_mean"], entries["is_std"] = (np.float64(v) for v in inception_score(logits))
    atomic_write(path, lambda fh: np.savez(fh, **entries))
    return ReferenceStats(mu, sigma, entries.get("features"), len(features), source,
                          weights_sha256, path)


def load_stats(path: str) -> ReferenceStats:
    """Read a ppddpm or pytorch-fid statistics .npz (keys mu, sigma)."""
    if not os.path.isfile(path):
        raise MetricError(f"reference statistics {path} do not exist; make them with "
                          "--mode fid_stats (from the training set) or pass pytorch-fid's .npz")
    try:
        with np.load(path) as f:
            if "mu" not in f.files or "sigma" not in f.files:
                raise MetricError(f"{path} is not an FID statistics file: it needs 'mu' and "
                                  f"'sigma' (pytorch-fid's format), it has {f.files}")
            mu, sigma = np.asarray(f["mu"], np.float64), np.asarray(f["sigma"], np.float64)
            feats = np.asarray(f["features"], np.float32) if "features" in f.files else None
            num = int(f["num_images"]) if "num_images" in f.files else None
            source = str(f["source"]) if "source" in f.files else "pytorch-fid statistics"
            sha = str(f["inception_sha256"]) if "inception_sha256" in f.files else None
    except MetricError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        raise MetricError(f"{path} is not a readable statistics .npz ({exc})") from None
    if mu.ndim != 1 or sigma.shape != (mu.size, mu.size):
        raise MetricError(f"{path}: mu {list(mu.shape)} and sigma {list(sigma.shape)} do not "
                          "form the statistics of one feature space")
    return ReferenceStats(mu, sigma, feats, num, source, sha, path)


def check_same_weights(ref: ReferenceStats, weights_sha256: str) -> None:
    """Statistics from other Inception weights make FID meaningless: refuse them."""
    if ref.weights_sha256 and ref.weights_sha256 != weights_sha256:
        raise MetricError(f"{ref.path} was computed with other Inception weights "
                          f"(sha256 {ref.weights_sha256[:12]}…) than the ones given now "
                          f"({weights_sha256[:12]}…); recompute it with --mode fid_stats")


def dataset_source(data_cfg) -> ImageSource:
    """The training images of ``data_cfg`` as uint8 HWC, unflipped, at the training size."""
    if data_cfg.dataset == "cifar10":
        images, _ = load_cifar10_arrays(data_cfg.data_dir, train=True, download=data_cfg.download)
        return ImageSource((im.transpose(1, 2, 0) for im in images), len(images),
                           f"cifar10 train ({len(images)} images, 32x32)")
    ds = build_dataset(data_cfg)
    if not hasattr(ds, "load"):
        raise MetricError(f"data.dataset={data_cfg.dataset!r} is not an image data set; "
                          "reference statistics need images")
    return ImageSource((ds.load(i).transpose(1, 2, 0) for i in range(len(ds))), len(ds),
                       f"{data_cfg.dataset} {os.path.abspath(data_cfg.data_dir)} "
                       f"({len(ds)} images, {data_cfg.image_size}x{data_cfg.image_size})")


def default_stats_path(data_cfg) -> str:
    return os.path.join(data_cfg.data_dir,
                        f"fid_stats_{data_cfg.dataset}_{data_cfg.image_size}_train.npz")
