"""Images sent from the page, checked against the chosen model before any job may use them:
it must be an image Pillow reads, of the model's resolution. Nothing is written: a checked
image is kept in memory under an id for the job that names it (the editing modes)."""
from __future__ import annotations

import io
import secrets
import threading
from collections import OrderedDict
from typing import Optional

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import PPDDPMError
from .catalog import ModelEntry

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
KEEP_UPLOADS = 32


class UploadError(PPDDPMError):
    """An uploaded file that is not an image the chosen model can take."""


def read_image(data: bytes, filename: str, entry: ModelEntry) -> np.ndarray:
    """The upload as float32 CHW in [-1, 1] of the model's channels; UploadError naming what
    is wrong and what to give instead."""
    c, h, w = entry.shape
    name = (filename or "the upload")[:100]
    if not data:
        raise UploadError(f"{name} is empty; choose a {w}x{h} PNG or JPEG image")
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError(f"{name} is {len(data) // 2**20} MB; images up to "
                          f"{MAX_UPLOAD_BYTES // 2**20} MB are taken")
    try:
        img = Image.open(io.BytesIO(data))
        size = img.size
        if size != (w, h):
            raise UploadError(f"{name} is {size[0]}x{size[1]}, but {entry.name} makes {w}x{h} "
                              f"images; give an image of {w}x{h} pixels")
        img.load()
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise UploadError(f"{name} is not an image (PNG, JPEG, WebP, BMP ...); choose a {w}x{h} "
                          "image") from None
    except OSError as exc:
        raise UploadError(f"{name} is a damaged image ({exc}); choose another") from None
    arr = np.asarray(img.convert("L" if c == 1 else "RGB"), dtype=np.float32)
    arr = arr.reshape(h, w, c).transpose(2, 0, 1)
    return arr / 127.5 - 1.0


class Uploads:
    """The last KEEP_UPLOADS checked images, by id."""

    def __init__(self):
        self._images: "OrderedDict[str, tuple]" = OrderedDict()
        self._lock = threading.Lock()

    def add(self, image: np.ndarray, entry: ModelEntry) -> str:
        key = secrets.token_hex(8)
        with self._lock:
            self._images[key] = (entry.name, image)
            while len(self._images) > KEEP_UPLOADS:
                self._images.popitem(last=False)
        return key

    def get(self, key: str, entry: ModelEntry) -> Optional[np.ndarray]:
        with self._lock:
            found = self._images.get(key)
        return found[1] if found and found[0] == entry.name else None
