"""MNIST and Fashion-MNIST: 28x28 greyscale, 10 classes, from the official idx files.

The four files of each set (``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``) are
read gzip-compressed (or uncompressed, without ``.gz``) from ``data_dir`` or from
torchvision's ``{data_dir}/{MNIST,FashionMNIST}/raw/``; missing ones are downloaded
with an MD5 check (``data.download: true``).

idx format (LeCun's MNIST page): a big-endian header ``00 00 <type> <ndim>``
(type 0x08 = unsigned byte), then ``ndim`` big-endian uint32 sizes, then the data
row-major. Images: ndim 3, [N, 28, 28], 0 = background; labels: ndim 1, [N].
"""
from __future__ import annotations

import gzip
import os
import zlib
from typing import Optional, Tuple

import numpy as np
import paddle

from ..config import ConfigError
from ..errors import DatasetError
from .download import download_file
from .loader import split_key, to_model_input

# The official MD5s of the gzip files (as listed by torchvision and the sets' own pages).
SETS = {
    "mnist": {
        "title": "MNIST",
        "url": "https://ossci-datasets.s3.amazonaws.com/mnist/",  # mirror of yann.lecun.com
        "raw_dir": "MNIST",
        "md5": {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
                "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
                "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
        "classes": [str(d) for d in range(10)],
    },
    "fashion_mnist": {
        "title": "Fashion-MNIST",
        "url": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "raw_dir": "FashionMNIST",
        "md5": {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
                "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
        "classes": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                    "Sneaker", "Bag", "Ankle boot"],
    },
}
BASE_URLS = {name: spec["url"] for name, spec in SETS.items()}  # tests point these at file://
DOWNLOAD_TIMEOUT = 30.0
IMAGE_SIZE = 28


def split_files(train: bool) -> Tuple[str, str]:
    prefix = "train" if train else "t10k"
    return f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz"


def _where_to_put(name: str, data_dir: str, files) -> str:
    spec = SETS[name]
    listed = ", ".join(f"{spec['url']}{f} (MD5 {spec['md5'][f]})" for f in files)
    return (f"Download {listed} and put them in {os.path.abspath(data_dir)}, or set "
            "--data_dir to where they already are")


def find_file(data_dir: str, name: str, filename: str) -> Optional[str]:
    """The path of ``filename`` (or its uncompressed twin) under ``data_dir``; None if absent."""
    for folder in (data_dir, os.path.join(data_dir, SETS[name]["raw_dir"], "raw")):
        for candidate in (filename, filename[:-3]):
            path = os.path.join(folder, candidate)
            if os.path.isfile(path):
                return path
    return None


def parse_idx(raw: bytes, ndim: int, what: str) -> np.ndarray:
    """uint8 array of an idx file's bytes; ``ndim`` is the expected number of dimensions."""
    if len(raw) < 4 + 4 * ndim or raw[:2] != b"\x00\x00" or raw[2] != 0x08 or raw[3] != ndim:
        raise ValueError(f"{what} does not start with an idx header of unsigned bytes in "
                         f"{ndim} dimension(s) (00 00 08 0{ndim})")
    shape = tuple(int.from_bytes(raw[4 + 4 * k:8 + 4 * k], "big") for k in range(ndim))
    body = raw[4 + 4 * ndim:]
    if len(body) != int(np.prod(shape)):
        raise ValueError(f"{what}: the header says {shape} ({int(np.prod(shape))} bytes), the "
                         f"file holds {len(body)}")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def _read(path: str) -> bytes:
    if path.endswith(".gz"):
        with gzip.open(path, "rb") as fh:
            return fh.read()
    with open(path, "rb") as fh:
        return fh.read()


def load_mnist_arrays(data_dir: str, name: str = "mnist", train: bool = True,
                      download: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """(uint8 [N, 28, 28], int64 [N]) of the train (60000) or test (10000) split."""
    spec = SETS[name]
    files = split_files(train)
    paths = []
    for filename in files:
        path = find_file(data_dir, name, filename)
        if path is None:
            where = _where_to_put(name, data_dir, files)
            if not download:
                raise DatasetError(f"{spec['title']} {filename} not found in "
                                   f"{os.path.abspath(data_dir)} and download is off. {where}")
            path = download_file(BASE_URLS[name] + filename,
                                          os.path.join(data_dir, filename),
                                          spec["md5"][filename], f"{spec['title']} {filename}",
                                          where, timeout=DOWNLOAD_TIMEOUT)
        paths.append(path)
    try:
        images = parse_idx(_read(paths[0]), 3, os.path.basename(paths[0]))
        labels = parse_idx(_read(paths[1]), 1, os.path.basename(paths[1])).astype(np.int64)
        if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE) or len(images) != len(labels):
            raise ValueError(f"images {images.shape} and labels {labels.shape} are not "
                             f"[N, 28, 28] and [N]")
        if labels.size and labels.max() >= len(spec["classes"]):
            raise ValueError(f"labels go up to {labels.max()}, above the 10 classes")
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise DatasetError(f"{spec['title']} files in {os.path.abspath(data_dir)} are corrupt "
                           f"or not the official idx files ({exc}). Delete them and let ppddpm "
                           f"download them again, or: {_where_to_put(name, data_dir, files)}"
                           ) from None
    return images, labels


class MnistDataset(paddle.io.Dataset):
    """MNIST / Fashion-MNIST as (float32 [1, 28, 28] in [-1,1], int64 label) pairs.

    Pixel v becomes v/127.5 - 1 (ink is +1 on MNIST's black background). Declares
    channels 1, image_size 28 and ``class_names`` (digits "0".."9", or Fashion-MNIST's
    10 names). Random flips mirror left-right as for every image set; MNIST digits are
    not mirror-symmetric, so its config turns them off.
    """

    def __init__(self, data_dir: str, name: str = "mnist", train: bool = True,
                 random_flip: bool = False, download: bool = True,
                 image_size: int = IMAGE_SIZE, seed: Optional[int] = None):
        super().__init__()
        if name not in SETS:
            raise ConfigError(f"unknown idx data set {name!r}; choose one of {sorted(SETS)}")
        if image_size != IMAGE_SIZE:
            raise ConfigError(f"data.image_size={image_size}, but {SETS[name]['title']} images "
                              "are 28x28; set data.image_size=28 (and model.resolution=28)")
        self.name, self.train, self.random_flip = name, train, random_flip
        images, self.labels = load_mnist_arrays(data_dir, name, train, download)
        self.images = images[:, None]  # [N, 1, 28, 28]
        self.channels, self.image_size = 1, IMAGE_SIZE
        self.class_names = list(SETS[name]["classes"])
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.images)

    def load(self, i: int) -> np.ndarray:
        """uint8 [1, 28, 28] of item i (no flip)."""
        return self.images[i]

    def __getitem__(self, key):
        i, flip = split_key(key)
        x = to_model_input(self.images[i], flip, self.random_flip, self._rng)
        return x, np.int64(self.labels[i])
