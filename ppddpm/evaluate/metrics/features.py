"""Inception features of image collections: arrays, .npz files and image folders.

Every source yields uint8 HWC RGB images. Grey images are repeated to RGB and an alpha
channel is dropped, as PIL's convert('RGB') does in pytorch-fid.
"""
from __future__ import annotations

import os
from typing import Iterable, Iterator, Tuple

import numpy as np
import paddle
from PIL import Image

from ...data.folders import find_images
from ...runtime.progress import progress as progress_display
from .fid import MetricError


class ImageSource:
    """A sized iterable of uint8 HWC RGB images with a description for reports."""

    def __init__(self, images: Iterable[np.ndarray], count: int, description: str):
        self._images, self.count, self.description = images, int(count), description

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self._images)


def to_rgb_uint8(img: np.ndarray, where: str = "image") -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise MetricError(f"{where}: expected uint8 pixels (0..255), got {img.dtype}; convert "
                          "[-1,1] floats with ppddpm.images.to_uint8 first")
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[-1] not in (1, 3, 4):
        raise MetricError(f"{where}: expected an HxWxC image with C in 1, 3, 4, got {list(img.shape)}")
    if img.shape[-1] == 1:
        return np.repeat(img, 3, axis=-1)
    return img[:, :, :3]


def from_array(images: np.ndarray, description: str) -> ImageSource:
    """uint8 NHWC (NCHW is recognised when C is 1 or 3 and the last axis is not; NHW is
    greyscale)."""
    arr = np.asarray(images)
    if arr.ndim == 3:  # [N, H, W]: greyscale without a channel axis (e.g. MNIST arrays)
        arr = arr[..., None]
    if arr.ndim == 4 and arr.shape[1] in (1, 3) and arr.shape[-1] not in (1, 3, 4):
        arr = arr.transpose(0, 2, 3, 1)
    if arr.ndim != 4:
        raise MetricError(f"{description}: expected N images as [N, H, W, C], got shape {list(arr.shape)}")
    return ImageSource((to_rgb_uint8(a, description) for a in arr), arr.shape[0], description)


def from_npz(path: str) -> ImageSource:
    """A sample file: uint8 NHWC under 'arr_0' (ppddpm --save_npz, OpenAI's evaluator)."""
    try:
        with np.load(path) as f:
            key = "arr_0" if "arr_0" in f.files else (f.files[0] if len(f.files) == 1 else None)
            if key is None:
                raise MetricError(f"{path} has no 'arr_0' entry (entries: {f.files}); expected "
                                  "uint8 NHWC samples as written by --save_npz")
            arr = f[key]
    except (OSError, ValueError) as exc:
        raise MetricError(f"{path} is not a readable .npz of samples ({exc})") from None
    return from_array(arr, path)


def from_folder(root: str) -> ImageSource:
    """Every JPEG/PNG/WebP under ``root`` (recursive, sorted), decoded to RGB at its own size."""
    files = find_images(root)
    if not files:
        raise MetricError(f"no .jpg/.png/.webp images under {os.path.abspath(root)}")

    def gen():
        for rel in files:
            with Image.open(os.path.join(root, rel)) as im:
                yield np.asarray(im.convert("RGB"), dtype=np.uint8)
    return ImageSource(gen(), len(files), os.path.abspath(root))


def open_samples(path: str) -> ImageSource:
    if os.path.isdir(path):
        return from_folder(path)
    if path.endswith(".npz") and os.path.isfile(path):
        return from_npz(path)
    raise MetricError(f"--samples {path!r} is neither a folder of images nor an existing .npz file")


def _batches(source: Iterable[np.ndarray], batch_size: int) -> Iterator[np.ndarray]:
    """Consecutive images of one size stacked into batches of at most ``batch_size``."""
    batch = []
    for img in source:
        if batch and (len(batch) == batch_size or img.shape != batch[0].shape):
            yield np.stack(batch)
            batch = []
        batch.append(img)
    if batch:
        yield np.stack(batch)


def inception_features(model, source: ImageSource, batch_size: int = 50,
                       progress: bool = True, desc: str = "inception",
                       runner=None) -> Tuple[np.ndarray, np.ndarray]:
    """(pool3 features [N, 2048], unbiased logits [N, 1008]) as float32.

    ``runner``: an InceptionPredictor (ppddpm.metrics.inception_engine) to run the network
    by Paddle Inference; None runs ``model`` in the dynamic graph."""
    pool, logits = [], []
    bar = progress_display(total=len(source), desc=desc, unit="img", enabled=progress)
    with paddle.no_grad():
        rgb = (to_rgb_uint8(img, source.description) for img in source)  # grey -> RGB
        for batch in _batches(rgb, batch_size):
            # uint8 / 255 in float32 with IEEE division, as torchvision's ToTensor.
            x = paddle.to_tensor(batch.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255))
            if runner is not None:
                feats, lg = runner.features(x)
            else:
                out = model.pool3(model.preprocess(x))
                feats, lg = out.numpy(), model.logits_unbiased(out).numpy()
            pool.append(feats)
            logits.append(lg)
            bar.update(len(batch))
    bar.close()
    if not pool:
        raise MetricError(f"{source.description} holds no images")
    return np.concatenate(pool), np.concatenate(logits)
