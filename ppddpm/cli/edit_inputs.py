"""The user's files for the editing modes, read and checked against the model: images of
its size and channels, the inpainting mask, the interpolation's two ends. Every problem
is one ConfigError line naming the flag, the file and the fix."""
from __future__ import annotations

import os
from typing import List, NamedTuple, Sequence, Tuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..config import ConfigError
from ..data.folders import find_images, pil_to_chw, to_mode

# PIL mode -> channels (a palette image is read as the RGB it shows)
MODE_CHANNELS = {"1": 1, "L": 1, "I": 1, "I;16": 1, "I;16B": 1, "I;16L": 1, "F": 1,
                 "LA": 2, "P": 3, "RGB": 3, "YCbCr": 3, "RGBA": 4, "CMYK": 4}
CHANNEL_NAMES = {1: "grey", 2: "grey with alpha", 3: "RGB", 4: "4-channel (RGBA or CMYK)"}


class InputImages(NamedTuple):
    images: np.ndarray      # float32 [N, C, H, W] in [-1, 1]
    names: List[str]        # file names relative to the folder (or the file's own name)


def open_image(path: str, flag: str) -> Image.Image:
    if not os.path.isfile(path):
        raise ConfigError(f"{flag} {path!r} does not exist; give an image file (PNG, JPEG, WebP)")
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except (UnidentifiedImageError, OSError) as exc:
        raise ConfigError(f"{flag} {path!r} is not a readable image ({exc})") from None


def image_array(path: str, shape: Sequence[int], flag: str = "--init_image") -> np.ndarray:
    """uint8 [C, H, W] of one image file that must have the model's channels and size."""
    im = open_image(path, flag)
    c, h, w = (int(s) for s in shape)
    channels = MODE_CHANNELS.get(im.mode)
    if channels != c:
        got = f"{channels} ({CHANNEL_NAMES[channels]})" if channels else f"mode {im.mode}"
        raise ConfigError(f"{flag} {path!r} has {got} channels, but the model makes images of "
                          f"{c} ({CHANNEL_NAMES[c]}); convert it to {CHANNEL_NAMES[c]}")
    if im.size != (w, h):
        raise ConfigError(f"{flag} {path!r} is {im.size[0]}x{im.size[1]} pixels, but the model "
                          f"makes {w}x{h} images; resize or crop it to {w}x{h}")
    return pil_to_chw(to_mode(im, c))


def read_images(path: str, shape: Sequence[int], flag: str = "--init_image") -> InputImages:
    """An image file, or every image of a folder (sorted, recursively)."""
    if os.path.isdir(path):
        names = find_images(path)
        if not names:
            raise ConfigError(f"{flag} {path!r} is a folder without images (PNG, JPEG, WebP)")
        files = [os.path.join(path, name) for name in names]
    else:
        names, files = [os.path.basename(path)], [path]
    arrays = np.stack([image_array(f, shape, flag) for f in files])
    return InputImages(arrays.astype(np.float32) / 127.5 - 1.0, names)


def read_mask(path: str, shape: Sequence[int]) -> np.ndarray:
    """float32 [1, 1, H, W]: 1 where the mask image is light (kept), 0 where dark."""
    if not path:
        raise ConfigError("--mode inpaint needs --mask: an image of the model's size, white "
                          "where the image is kept and black where it is generated")
    im = open_image(path, "--mask")
    h, w = int(shape[1]), int(shape[2])
    if im.size != (w, h):
        raise ConfigError(f"--mask {path!r} is {im.size[0]}x{im.size[1]} pixels, but the model "
                          f"makes {w}x{h} images; give a {w}x{h} mask")
    grey = np.asarray(to_mode(im, 1), dtype=np.uint8)
    keep = (grey >= 128).astype(np.float32)
    if keep.all():
        raise ConfigError(f"--mask {path!r} is white everywhere: nothing to inpaint; paint "
                          "black where the image should be generated")
    return keep[None, None]


def parse_endpoints(spec: str) -> Tuple[object, object]:
    """The two ends of ``--endpoints A,B``: an int seed or an image path each."""
    parts = [p.strip() for p in str(spec).split(",")]
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"--endpoints {spec!r} must name two ends A,B, each a seed or an "
                          "image file, e.g. 3,7 or a.png,b.png")
    return tuple(int(p) if p.isdigit() else p for p in parts)
