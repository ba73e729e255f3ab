"""CIFAR-10 (official python version), read straight from the tar.gz or the extracted folder.

Layout of the official files: ``cifar-10-batches-py/{data_batch_1..5,test_batch}``,
each a pickled dict (Python 2, protocol 2) with ``data`` uint8 [10000, 3072]
(R plane, G plane, B plane, each 32x32 row-major), ``labels``, ``batch_label``
and ``filenames``. They must be unpickled with ``encoding="latin1"`` so the
Python 2 byte strings inside numpy arrays decode to the raw bytes.

We read the pickles straight out of the tar.gz instead of extracting it: the
tar stays the only copy on disk (no 180 MB of extracted files, no half-extracted
folder after a crash), and decompressing it takes about a second next to hours
of training. An extracted ``cifar-10-batches-py/`` is used when present.
"""
from __future__ import annotations

import os
import pickle
import tarfile
import zlib
from typing import Dict, Optional, Tuple

import numpy as np
import paddle

from ..errors import DatasetError
from ..io.safeload import UnsafeFileError, load_pickle
from .download import download_file
from .loader import split_key, to_model_input

OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_URL = OFFICIAL_URL  # where download_cifar10 fetches from (tests point it at file://)
OFFICIAL_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_MD5 = OFFICIAL_MD5
TAR_NAME = "cifar-10-python.tar.gz"
DIR_NAME = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
DOWNLOAD_TIMEOUT = 30.0  # seconds without data before a download gives up
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
               "ship", "truck")  # batches.meta's label_names: label i is CLASS_NAMES[i]


def _where_to_put(data_dir: str) -> str:
    tar_path = os.path.abspath(data_dir if os.path.isfile(data_dir)
                               else os.path.join(data_dir, TAR_NAME))
    return (f"Download {OFFICIAL_URL} (MD5 {OFFICIAL_MD5}) and put it at {tar_path} "
            f"(or its extracted {DIR_NAME}/ folder beside it), or set --data_dir "
            "to where it already is")


def decode_batch(raw: bytes, name: str) -> Tuple[np.ndarray, np.ndarray]:
    """One pickled batch -> (uint8 [N,3,32,32], int64 [N]).

    Unpickled through the allow-list (ppddpm.safeload): a batch whose pickle asks for
    anything but numpy arrays and plain values raises UnsafeFileError, nothing runs."""
    try:
        d = load_pickle(raw, source=f"CIFAR-10 batch {name}", encoding="latin1")
    except UnsafeFileError:
        raise
    except Exception as exc:  # truncated/garbage pickles raise many types
        raise ValueError(f"{name} does not unpickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(d, dict):
        raise ValueError(f"{name} holds a {type(d).__name__}, not a dict")
    d = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in d.items()}
    if "data" not in d or "labels" not in d:
        raise ValueError(f"{name} lacks 'data'/'labels' (keys: {sorted(d)})")
    data = np.asarray(d["data"], dtype=np.uint8)
    labels = np.asarray(d["labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise ValueError(f"{name}: data {data.shape} / labels {labels.shape} are not "
                         "[N, 3072] / [N]")
    return data.reshape(-1, 3, 32, 32), labels


def _read_tar(tar_path: str, names) -> Dict[str, bytes]:
    out = {}
    with tarfile.open(tar_path, "r:gz") as tf:
        for member in tf:
            parent, base = os.path.split(os.path.normpath(member.name))
            if member.isfile() and os.path.basename(parent) == DIR_NAME and base in names:
                out[base] = tf.extractfile(member).read()
    missing = [n for n in names if n not in out]
    if missing:
        raise ValueError(f"the archive has no {DIR_NAME}/{missing[0]}")
    return out


def _read_dir(folder: str, names) -> Dict[str, bytes]:
    out = {}
    for n in names:
        with open(os.path.join(folder, n), "rb") as fh:
            out[n] = fh.read()
    return out


def locate(data_dir: str) -> Optional[Tuple[str, str]]:
    """('dir', path) or ('tar', path) of CIFAR-10 under ``data_dir``; None when absent."""
    for folder in (os.path.join(data_dir, DIR_NAME), data_dir):
        if os.path.isfile(os.path.join(folder, "data_batch_1")):
            return "dir", folder
    for tar in (os.path.join(data_dir, TAR_NAME), data_dir):
        if os.path.isfile(tar):
            return "tar", tar
    return None


def download_cifar10(data_dir: str) -> str:
    """Download the tar.gz into ``data_dir`` (temp file, MD5 check, rename)."""
    return download_file(CIFAR10_URL, os.path.join(data_dir, TAR_NAME), CIFAR10_MD5, "CIFAR-10",
                         _where_to_put(data_dir), timeout=DOWNLOAD_TIMEOUT)


def load_cifar10_arrays(data_dir: str, train: bool = True,
                        download: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """(uint8 [N,3,32,32], int64 [N]) of the train (50000) or test (10000) split."""
    found = locate(data_dir)
    if found is None:
        if not download:
            raise DatasetError(f"CIFAR-10 not found in {os.path.abspath(data_dir)} and "
                               f"download is off. {_where_to_put(data_dir)}")
        found = ("tar", download_cifar10(data_dir))
    kind, path = found
    names = TRAIN_FILES if train else TEST_FILES
    try:
        raw = _read_tar(path, names) if kind == "tar" else _read_dir(path, names)
        parts = [decode_batch(raw[n], n) for n in names]
    except (tarfile.TarError, EOFError, zlib.error, OSError, pickle.UnpicklingError,
            ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise DatasetError(f"CIFAR-10 at {os.path.abspath(path)} is corrupt or not the "
                           f"official python version ({type(exc).__name__}: {exc}). Delete "
                           f"it and let ppddpm download it again. "
                           f"{_where_to_put(data_dir)}") from None
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))


class Cifar10Dataset(paddle.io.Dataset):
    """CIFAR-10 as (float32 CHW image in [-1,1], int64 label) numpy pairs.

    Pixel v becomes v/127.5 - 1. Declares channels 3, image_size 32 and the 10
    ``class_names``. A key may be an int (flip drawn from this
    data set's own RNG, seeded by ``seed``) or an ``(index, flip)`` pair from
    ``ppddpm.data.loader.EpochBatchSampler`` (reproducible across workers).
    """

    def __init__(self, data_dir: str, train: bool = True, random_flip: bool = True,
                 download: bool = True, seed: Optional[int] = None):
        super().__init__()
        self.data_dir, self.train, self.random_flip = data_dir, train, random_flip
        self.images, self.labels = load_cifar10_arrays(data_dir, train, download)
        self.channels, self.image_size, self.class_names = 3, 32, list(CLASS_NAMES)
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key):
        i, flip = split_key(key)
        x = to_model_input(self.images[i], flip, self.random_flip, self._rng)
        return x, np.int64(self.labels[i])
