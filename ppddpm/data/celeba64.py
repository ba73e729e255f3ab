"""CelebA 64x64: the aligned CelebA faces with the crop of the DDIM paper's code.

Source: ``img_align_celeba.zip`` (202,599 JPEGs of 178x218 under ``img_align_celeba/``),
read straight from the zip without extracting it, or the extracted ``img_align_celeba/``
folder. ``data_dir`` may be the zip, the folder, or a folder holding either. When
``list_eval_partition.txt`` lies beside them, only its train split (partition 0,
162,770 images) is used, as DDIM does; otherwise every image is.

Transform (DDIM ``datasets/__init__.py``, also ddpm-torch): crop the 128x128 box whose
top-left corner is (left 25, top 57), i.e. rows 57..184 and columns 25..152 around
the centre (x 89, y 121); then resize to ``image_size`` (64) bilinearly, as
torchvision's Resize does on PIL images. CelebA cannot be downloaded by a script (it
is on Google Drive); a missing file is an error that says where to get it.
"""
from __future__ import annotations

import io
import os
import warnings
import zipfile
from typing import List, Optional

import numpy as np
import paddle
from PIL import Image

from ..errors import DatasetError
from .folders import find_images, is_readable, load_or_next, pil_to_chw, to_mode
from .loader import split_key, to_model_input

ZIP_NAME = "img_align_celeba.zip"
DIR_NAME = "img_align_celeba"
PARTITION_NAME = "list_eval_partition.txt"
OFFICIAL_PAGE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
ZIP_URL = "https://drive.google.com/file/d/0B7EVK8r0v71pZjFTYXZWM3FlRnM"  # "Align&Cropped Images"
ZIP_MD5 = "00d2c5bc6d35e252742224ab0c1e8fcb"
ALIGNED_SIZE = (178, 218)             # (width, height) of every aligned image
CROP_BOX = (25, 57, 153, 185)         # PIL box (left, top, right, bottom): 128x128


def _where_to_put(data_dir: str) -> str:
    return (f"Download {ZIP_NAME} (MD5 {ZIP_MD5}) from {ZIP_URL} (linked from {OFFICIAL_PAGE}, "
            f"'Align&Cropped Images') and put it at "
            f"{os.path.abspath(os.path.join(data_dir, ZIP_NAME))} (or its extracted {DIR_NAME}/ "
            "folder beside it), or set --data_dir to where it already is")


def celeba_crop(im: Image.Image, image_size: int) -> Image.Image:
    """The DDIM crop of an aligned 178x218 image, resized to ``image_size`` (bilinear)."""
    if im.size != ALIGNED_SIZE:
        raise ValueError(f"is {im.size[0]}x{im.size[1]}, not an aligned CelebA image "
                         f"({ALIGNED_SIZE[0]}x{ALIGNED_SIZE[1]})")
    im = im.crop(CROP_BOX)
    if image_size != im.size[0]:
        im = im.resize((image_size, image_size), Image.Resampling.BILINEAR)
    return im


def _train_split(data_dir: str) -> Optional[set]:
    path = os.path.join(data_dir, PARTITION_NAME)
    if not os.path.isfile(path):
        return None
    with open(path, "r", encoding="utf-8") as fh:
        rows = [line.split() for line in fh if line.strip()]
    return {name for name, part in rows if part == "0"}


def locate(data_dir: str):
    """('zip', path) or ('dir', path) of the aligned images; None when absent."""
    if os.path.isfile(data_dir) and data_dir.endswith(".zip"):
        return "zip", data_dir
    for folder in (os.path.join(data_dir, DIR_NAME), data_dir):
        if os.path.isdir(folder) and any(n.lower().endswith(".jpg") for n in os.listdir(folder)):
            return "dir", folder
    if os.path.isfile(os.path.join(data_dir, ZIP_NAME)):
        return "zip", os.path.join(data_dir, ZIP_NAME)
    return None


class CelebA64Dataset(paddle.io.Dataset):
    """(float32 [C, S, S] in [-1,1], int64 label -1) pairs of aligned CelebA.

    Declares ``channels`` (3, or 1 for greyscale), ``image_size`` and ``class_names``
    None (unlabelled). The zip is opened once per process (worker processes must not
    share a file offset).
    """

    def __init__(self, data_dir: str, image_size: int = 64, random_flip: bool = True,
                 seed: Optional[int] = None, channels: int = 3):
        super().__init__()
        found = locate(data_dir)
        if found is None:
            raise DatasetError(f"CelebA ({ZIP_NAME} or {DIR_NAME}/) not found in "
                               f"{os.path.abspath(data_dir)}. {_where_to_put(data_dir)}")
        self.kind, self.path = found
        self.image_size, self.random_flip, self.channels = int(image_size), random_flip, channels
        self.class_names = None
        self.skipped: List[str] = []
        if self.kind == "zip":
            try:
                with zipfile.ZipFile(self.path) as zf:
                    names = sorted(n for n in zf.namelist() if n.lower().endswith(".jpg")
                                   and not os.path.basename(n).startswith("."))
            except (zipfile.BadZipFile, OSError) as exc:
                raise DatasetError(f"{os.path.abspath(self.path)} is not a readable zip "
                                   f"({exc}). {_where_to_put(data_dir)}") from None
        else:
            names = find_images(self.path)
        split = _train_split(os.path.dirname(self.path) if self.kind == "zip"
                             or os.path.basename(self.path) == DIR_NAME else self.path)
        if split is not None:
            names = [n for n in names if os.path.basename(n) in split]
        if self.kind == "dir":
            self.skipped = [n for n in names if not is_readable(os.path.join(self.path, n))]
            if self.skipped:
                warnings.warn(f"skipped {len(self.skipped)} unreadable image file(s) of "
                              f"{len(names)} under {os.path.abspath(self.path)} (first: "
                              f"{self.skipped[0]})", stacklevel=2)
            bad = set(self.skipped)
            names = [n for n in names if n not in bad]
        if not names:
            raise DatasetError(f"no CelebA JPEGs in {os.path.abspath(self.path)}. "
                               f"{_where_to_put(data_dir)}")
        self.files = names
        self.labels = np.full(len(names), -1, dtype=np.int64)
        self._rng = np.random.default_rng(seed)
        self._zip, self._zip_pid = None, None

    def __len__(self) -> int:
        return len(self.files)

    def _open(self, i: int):
        if self.kind == "dir":
            return Image.open(os.path.join(self.path, self.files[i]))
        if self._zip is None or self._zip_pid != os.getpid():
            self._zip, self._zip_pid = zipfile.ZipFile(self.path), os.getpid()
        return Image.open(io.BytesIO(self._zip.read(self.files[i])))

    def load(self, i: int) -> np.ndarray:
        """uint8 [C, S, S] of item i (no flip)."""
        with self._open(i) as im:
            im.load()
            return pil_to_chw(to_mode(celeba_crop(im, self.image_size), self.channels))

    def __getitem__(self, key):
        i, flip = split_key(key)
        img, _ = load_or_next(self.load, len(self.files), i % len(self.files),
                              lambda j: f"{self.path}:{self.files[j]}", self.path)
        return to_model_input(img, flip, self.random_flip, self._rng), np.int64(-1)
