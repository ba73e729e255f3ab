"""Any folder tree of JPEG/PNG/WebP images (CelebA-HQ's {train,val}/{male,female}/*.jpg).

Files are found recursively (hidden files and folders skipped) and sorted by
their path relative to the root, so the order is the same on every machine.
Every image is used, whichever split folder it is in (DDPM trains CelebA-HQ on
all 30k images). Images are converted to RGB or to greyscale (``channels`` 3 or 1).

Classes: the sub-folder at depth ``class_level`` names an image's class (1: the
first-level sub-folder, ``{root}/dog/x.jpg`` -> "dog"; CelebA-HQ's
``train/male/x.jpg`` needs 2). ``class_names`` is their sorted list, and an item's
label indexes it. When any image lies above that depth (e.g. directly in the root),
the set is unlabelled: ``class_names`` is None and every label is -1.

Unreadable files are found at index time and skipped with ONE warning that counts
them: each file is opened and ``verify()``-ed (headers and PNG chunk CRCs, without
decoding pixels: cheap even for 30k files). That misses JPEGs cut short (their
headers are intact), so a JPEG must also end with its end-of-image marker, and a
WebP must be as long as its RIFF header says; a file that fails these cheap tests
is decoded (at 1/8 scale for a JPEG) and skipped if decoding fails. Damage only a
full decode reveals is still caught when the item is loaded: the next readable
item is used instead, with a warning naming the file.
"""
from __future__ import annotations

import os
import warnings
from typing import Callable, List, Optional, Tuple

import numpy as np
import paddle
from PIL import Image

from ..errors import DatasetError
from ..runtime.progress import progress as progress_display
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


_JPEG_EOI = b"\xff\xd9"
_TAIL = 1024  # bytes at the end of a JPEG searched for the end-of-image marker


def _ends_complete(path: str) -> bool:
    """Cheap test that a JPEG/WebP file is whole (see the module docstring)."""
    with open(path, "rb") as fh:
        head = fh.read(12)
        size = fh.seek(0, os.SEEK_END)
        if head[:2] == b"\xff\xd8":                            # JPEG: SOI ... EOI
            fh.seek(max(0, size - _TAIL))
            return _JPEG_EOI in fh.read()
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":      # RIFF size excludes 8 bytes
            return size >= int.from_bytes(head[4:8], "little") + 8
    return True


def _decodes(path: str) -> bool:
    try:
        with Image.open(path) as im:
            im.draft(im.mode, (1, 1))  # JPEG: decode at 1/8 scale (still reads every scan)
            im.load()
        return True
    except Exception:  # PIL raises many types (OSError, SyntaxError, ValueError...)
        return False


def is_readable(path: str) -> bool:
    """Whether ``path`` is an image PIL opens and (for cut-off JPEG/WebP files) decodes."""
    try:
        with Image.open(path) as im:
            im.verify()
    except Exception:  # PIL raises many types (UnidentifiedImageError, OSError, SyntaxError...)
        return False
    try:
        return _ends_complete(path) or _decodes(path)
    except OSError:
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


def to_mode(im: Image.Image, channels: int) -> Image.Image:
    """Any PIL mode -> RGB (channels 3) or L (channels 1; ITU-R 601-2 luma of the RGB
    image, PIL's convert("L")). Greyscale images stay exact in both."""
    if channels == 3:
        return to_rgb(im)
    if im.mode == "L":
        return im
    if im.mode in ("1", "I", "I;16", "I;16B", "I;16L", "F"):
        return to_rgb(im).getchannel(0)  # grey already: no luma weights (no rounding drift)
    return to_rgb(im).convert("L")


def resize_center_crop(im: Image.Image, size: int) -> Image.Image:
    """Scale the shorter side to ``size`` (bicubic, antialiased), crop the centre square."""
    w, h = im.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        im = im.resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=3.0)
    left, top = (nw - size) // 2, (nh - size) // 2
    return im.crop((left, top, left + size, top + size))


def pil_to_chw(im: Image.Image) -> np.ndarray:
    """An L or RGB PIL image -> uint8 [C, H, W]."""
    arr = np.asarray(im, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def class_labels(files: List[str], level: int) -> Tuple[Optional[List[str]], np.ndarray]:
    """(sorted class names, int64 labels) from the sub-folder at depth ``level`` of each
    relative path; (None, all -1) when some file lies above that depth."""
    parts = [p.split("/") for p in files]
    if any(len(q) <= level for q in parts):
        return None, np.full(len(files), -1, dtype=np.int64)
    names = [q[level - 1] for q in parts]
    classes = sorted(set(names))
    index = {c: i for i, c in enumerate(classes)}
    return classes, np.array([index[c] for c in names], dtype=np.int64)


class ImageFolderDataset(paddle.io.Dataset):
    """(float32 CHW image in [-1,1], int64 label) pairs from a folder tree.

    Declares ``channels`` (1 or 3), ``image_size`` and ``class_names`` (see the module
    docstring; ``classes`` is the same list, or [] when unlabelled). Keys: int or
    ``(index, flip)`` as in ``ppddpm.data.loader``.
    """

    def __init__(self, root: str, image_size: int, random_flip: bool = True,
                 seed: Optional[int] = None, check: bool = True, channels: int = 3,
                 class_level: int = 1):
        super().__init__()
        if not os.path.isdir(root):
            raise DatasetError(f"image folder {os.path.abspath(root)} does not exist; set "
                               "--data_dir to a folder of JPEG/PNG/WebP images (searched "
                               "recursively, e.g. {train,val}/{male,female}/*.jpg)")
        if channels not in (1, 3):
            raise DatasetError(f"image folders are read as 1 or 3 channels, not {channels}")
        self.root, self.image_size, self.random_flip = root, int(image_size), random_flip
        self.channels = int(channels)
        rel = find_images(root)
        bad = [p for p in progress_display(rel, desc="checking images", unit="img", leave=False)
               if not is_readable(os.path.join(root, p))] if check else []
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
        self.class_names, self.labels = class_labels(self.files, int(class_level))
        self.classes = list(self.class_names or [])
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.files)

    def load(self, i: int) -> np.ndarray:
        """uint8 [C, S, S] of item i (no flip)."""
        with Image.open(os.path.join(self.root, self.files[i])) as im:
            im.load()
            out = resize_center_crop(to_mode(im, self.channels), self.image_size)
        return pil_to_chw(out)

    def __getitem__(self, key):
        i, flip = split_key(key)
        img, j = load_or_next(self.load, len(self.files), i,
                              lambda j: os.path.join(self.root, self.files[j]), self.root)
        return to_model_input(img, flip, self.random_flip, self._rng), np.int64(self.labels[j])


def load_or_next(load: Callable[[int], np.ndarray], n: int, i: int,
                 name_of: Callable[[int], str], where: str) -> Tuple[np.ndarray, int]:
    """(``load(j)``, j) for the first j = i, i+1, ... (mod n) that loads; each failure
    (damage the index-time checks cannot see) is a warning naming the file."""
    for k in range(n):
        j = (i + k) % n
        try:
            return load(j), j
        except Exception as exc:
            warnings.warn(f"cannot decode {name_of(j)} ({exc}); using the next image instead")
    raise DatasetError(f"none of the images in {os.path.abspath(where)} decode")
