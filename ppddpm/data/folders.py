"""Any folder tree of JPEG/PNG/WebP images (CelebA-HQ's {train,val}/{male,female}/*.jpg).

Files are found recursively (hidden files and folders skipped) and sorted by
their path relative to the root, so the order is the same on every machine.
Every image is used, whichever split folder it is in (DDPM trains CelebA-HQ on
all 30k images).

Unreadable files: at index time each file is opened and ``verify()``-ed. That
reads headers (and checks PNG chunk CRCs) without decoding pixels, so it is cheap
even for 30k files, and catches non-images, empty and truncated-header files;
they are skipped with ONE warning that counts them. Damage that only decoding
reveals (e.g. a JPEG cut off mid-scan) is caught when the item is loaded: the
next readable item is used instead, with a warning naming the file.
"""
from __future__ import annotations

import os
import warnings
from typing import List, Optional, Tuple

import numpy as np
import paddle
from PIL import Image

from ..errors import DatasetError
from .loader import split_key, to_model_input

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp")


def find_images(root: str) -> List[str]:
    """Sorted relative paths (posix separators) of the images under ``root``."""
    found = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTS):
                found.append(os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/"))
    return sorted(found)


def is_readable(path: str) -> bool:
    try:
        with Image.open(path) as im:
            im.verify()
        return True
    except Exception:  # PIL raises many types (UnidentifiedImageError, OSError, SyntaxError...)
        return False


def to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB. Transparent pixels are composited onto white."""
    if im.mode == "RGB":
        return im
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if im.mode.startswith("I"):  # 16-bit greyscale PNG: scale 0..65535 to 0..255
        arr = np.asarray(im, dtype=np.float64) / 257.0
        im = Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8), mode="L")
    return im.convert("RGB")


def resize_center_crop(im: Image.Image, size: int) -> Image.Image:
    """Scale the shorter side to ``size`` (bicubic, antialiased), crop the centre square."""
    w, h = im.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        im = im.resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=3.0)
    left, top = (nw - size) // 2, (nh - size) // 2
    return im.crop((left, top, left + size, top + size))


class ImageFolderDataset(paddle.io.Dataset):
    """(float32 CHW image in [-1,1], int64 label) pairs from a folder tree.

    The label indexes ``self.classes``, the sorted names of the images' parent
    folders (``male``/``female`` for CelebA-HQ). Keys: int or ``(index, flip)``
    as in ``ppddpm.data.loader``.
    """

    def __init__(self, root: str, image_size: int, random_flip: bool = True,
                 seed: Optional[int] = None, check: bool = True):
        super().__init__()
        if not os.path.isdir(root):
            raise DatasetError(f"image folder {os.path.abspath(root)} does not exist; set "
                               "--data_dir to a folder of JPEG/PNG/WebP images (searched "
                               "recursively, e.g. {train,val}/{male,female}/*.jpg)")
        self.root, self.image_size, self.random_flip = root, int(image_size), random_flip
        rel = find_images(root)
        bad = [p for p in rel if not is_readable(os.path.join(root, p))] if check else []
        if bad:
            warnings.warn(f"skipped {len(bad)} unreadable image file(s) of {len(rel)} under "
                          f"{os.path.abspath(root)} (first: {bad[0]})", stacklevel=2)
        bad_set = set(bad)
        self.files = [p for p in rel if p not in bad_set]
        self.skipped = bad
        if not self.files:
            raise DatasetError(f"no readable {'/'.join(IMAGE_EXTS)} images under "
                               f"{os.path.abspath(root)} (searched recursively; {len(bad)} "
                               "unreadable); put the training images there or fix --data_dir")
        parents = [os.path.basename(os.path.dirname(p)) for p in self.files]
        self.classes = sorted(set(parents))
        index = {c: i for i, c in enumerate(self.classes)}
        self.labels = np.array([index[c] for c in parents], dtype=np.int64)
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.files)

    def load(self, i: int) -> np.ndarray:
        """uint8 [3, S, S] of item i (no flip)."""
        with Image.open(os.path.join(self.root, self.files[i])) as im:
            im.load()
            rgb = resize_center_crop(to_rgb(im), self.image_size)
        return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)

    def _load_or_next(self, i: int) -> Tuple[np.ndarray, int]:
        for k in range(len(self.files)):
            j = (i + k) % len(self.files)
            try:
                return self.load(j), j
            except Exception as exc:  # decoding errors PIL's verify() cannot see
                warnings.warn(f"cannot decode {os.path.join(self.root, self.files[j])} "
                              f"({exc}); using the next image instead")
        raise DatasetError(f"none of the images under {os.path.abspath(self.root)} decode")

    def __getitem__(self, key):
        i, flip = split_key(key)
        img, j = self._load_or_next(i % len(self.files))
        return to_model_input(img, flip, self.random_flip, self._rng), np.int64(self.labels[j])
