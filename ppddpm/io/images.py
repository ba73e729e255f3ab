"""Image output: [-1,1] tensors -> uint8, grids, single PNGs, npz for metrics, GIFs.

Conventions (see DESIGN.md):
- Inside the package images are float in [-1, 1], NCHW. Everything written to disk
  is uint8 NHWC made by ``to_uint8``: round-half-up of (x + 1) * 127.5, clipped to
  [0, 255]. The same conversion feeds grids and metric files.
- Grids follow torchvision's ``make_grid`` layout, which the original reproduction
  mirrors: a ``padding``-pixel border (white, 255) between tiles AND around the
  outside, so every tile is framed alike. An R x C grid of HxW tiles is
  ``(R*(H+p)+p, C*(W+p)+p)`` pixels; tile (r, c) starts at ``(p + r*(H+p), p + c*(W+p))``.
- Every file is written to a temp file and moved into place (io/files.py), so a
  crash never leaves a half-written image.
"""
from __future__ import annotations

import io
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from ..config import ConfigError
from ..config.checks import square_layout
from .files import atomic_write

_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def to_uint8(x) -> np.ndarray:
    """[-1,1] float NCHW (paddle tensor or numpy) -> uint8 NHWC numpy.

    A 3-D CHW input gives HWC. NaN maps to 0 (mid-grey) so a diverged sample
    still writes a defined image.
    """
    if not isinstance(x, np.ndarray) and hasattr(x, "numpy"):
        x = x.numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim not in (3, 4):
        raise ValueError(f"to_uint8 expects CHW or NCHW, got shape {x.shape}")
    y = np.floor((np.nan_to_num(x, nan=0.0) + 1.0) * 127.5 + 0.5)
    y = np.clip(y, 0, 255).astype(np.uint8)
    return np.moveaxis(y, -3, -1)


def _as_uint8_nhwc(images) -> np.ndarray:
    """uint8 arrays are taken as NHWC; float arrays/tensors as [-1,1] NCHW."""
    if isinstance(images, np.ndarray) and images.dtype == np.uint8:
        arr = images
    else:
        arr = to_uint8(images)
    if arr.ndim != 4 or arr.shape[-1] not in _MODES:
        raise ValueError(f"expected NHWC images with 1, 3 or 4 channels, got {arr.shape}")
    return arr


def to_grayscale(images) -> np.ndarray:
    """uint8 NHWC (or [-1,1] NCHW) -> uint8 NHW1 grey, by the ITU-R 601-2 luma
    L = 0.299 R + 0.587 G + 0.114 B in Pillow's fixed point (the same bytes as its
    ``convert("L")``). Grey images pass through; RGBA drops alpha."""
    imgs = _as_uint8_nhwc(images)
    if imgs.shape[-1] == 1:
        return imgs
    rgb = imgs[..., :3].astype(np.uint32)
    luma = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16
    return luma.astype(np.uint8)[..., None]


def grid_size(nrow: int, ncol: int, height: int, width: int, padding: int = 2) -> Tuple[int, int]:
    """(height, width) in pixels of a grid made by :func:`make_grid`."""
    return nrow * (height + padding) + padding, ncol * (width + padding) + padding


def make_grid(images, nrow: int, ncol: int, padding: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile uint8 NHWC images row-major into an [Hg, Wg, C] uint8 grid.

    Fewer than nrow*ncol images leave the remaining cells at ``pad_value``.
    """
    imgs = _as_uint8_nhwc(images)
    n, h, w, c = imgs.shape
    if n > nrow * ncol:
        raise ValueError(f"{n} images do not fit a {nrow}x{ncol} grid")
    gh, gw = grid_size(nrow, ncol, h, w, padding)
    grid = np.full((gh, gw, c), pad_value, dtype=np.uint8)
    for i in range(n):
        top = padding + (i // ncol) * (h + padding)
        left = padding + (i % ncol) * (w + padding)
        grid[top:top + h, left:left + w] = imgs[i]
    return grid


def _pil(arr_hwc: np.ndarray) -> Image.Image:
    if arr_hwc.shape[-1] == 1:
        return Image.fromarray(arr_hwc[..., 0], mode="L")
    return Image.fromarray(arr_hwc, mode=_MODES[arr_hwc.shape[-1]])


def _gif_frame(grid_hwc: np.ndarray) -> Image.Image:
    """Greyscale grids stay L (a GIF's 256 grey levels are exact); colour becomes RGB."""
    img = _pil(grid_hwc)
    return img if img.mode == "L" else img.convert("RGB")


def image_format(path: str) -> str:
    """The Pillow format that ``path``'s extension names (PNG when it has none); a
    ConfigError for an extension Pillow cannot write."""
    ext = os.path.splitext(path)[1].lower()
    if not ext:
        return "PNG"
    fmt = Image.registered_extensions().get(ext)
    if fmt is None or fmt not in Image.SAVE:
        raise ConfigError(f"{path}: Pillow cannot write {ext!r} images; end the name in .png "
                          "(exact), .webp, .jpg, .bmp or .tiff")
    return fmt


def save_png(arr_hwc: np.ndarray, path: str) -> str:
    """Write one uint8 HWC image atomically, as PNG or the format that ``path``'s extension
    names (``out.jpg``: JPEG), so the bytes always match the name."""
    img = _pil(arr_hwc)
    fmt = image_format(path)
    if fmt == "JPEG" and img.mode == "RGBA":
        img = img.convert("RGB")
    atomic_write(path, lambda fh: img.save(fh, format=fmt))
    return path


def save_grid(images, path: str, nrow: int, ncol: int, padding: int = 2,
              pad_value: int = 255) -> str:
    """Save a grid PNG (uint8 NHWC, or [-1,1] float NCHW) and return its path."""
    return save_png(make_grid(images, nrow, ncol, padding, pad_value), path)


INCOMPLETE_MARKER = "INCOMPLETE"


def save_individual(images, out_dir: str, start_index: int = 0) -> List[str]:
    """Write each image as ``{out_dir}/{start_index + i:06d}.png``; return the paths.

    While it writes, the folder holds a file ``INCOMPLETE`` (removed last), so a folder
    cut short by a kill or a signal is marked as such; running the command again
    rewrites every image and removes the marker."""
    imgs = _as_uint8_nhwc(images)
    os.makedirs(out_dir, exist_ok=True)
    marker = os.path.join(out_dir, INCOMPLETE_MARKER)
    atomic_write(marker, lambda fh: fh.write(
        f"ppddpm is writing images {start_index}..{start_index + len(imgs) - 1} here; this file "
        "is removed when all are written. If it is still here, that run was cut short: run "
        "it again.\n".encode()))
    paths = []
    for i, img in enumerate(imgs):
        paths.append(save_png(img, os.path.join(out_dir, f"{start_index + i:06d}.png")))
    os.remove(marker)
    return paths


def save_npz(images, path: str) -> str:
    """uint8 NHWC under key ``arr_0``, the layout FID/IS tools (e.g. OpenAI's evaluator) read."""
    imgs = _as_uint8_nhwc(images)
    atomic_write(path, lambda fh: np.savez(fh, arr_0=imgs))
    return path


def save_sequence(frames: Sequence, path: str, gif_path: Optional[str] = None,
                  padding: int = 2, frame_ms: int = 100, hold_ms: int = 2000,
                  gif_layout: Optional[Tuple[int, int]] = None) -> str:
    """Progressive generation: ``frames`` is a list over time of [N,H,W,C] uint8.

    The PNG grid has one row per image and one column per time point (time runs
    left to right). If ``gif_path`` is given, an animated GIF is also written:
    frame t is the grid (``gif_layout`` rows x cols, near-square by default) of the
    batch at time t; the last frame is shown for ``hold_ms``.
    Note: GIF encoders merge identical consecutive frames.
    """
    frames = [_as_uint8_nhwc(f) for f in frames]
    if not frames:
        raise ValueError("save_sequence needs at least one frame")
    if len({f.shape for f in frames}) != 1:
        raise ValueError(f"all frames must have one shape, got {sorted({f.shape for f in frames})}")
    n, t = frames[0].shape[0], len(frames)
    seq = np.stack(frames, axis=1).reshape((n * t,) + frames[0].shape[1:])
    save_png(make_grid(seq, n, t, padding), path)
    if gif_path is not None:
        rows, cols = gif_layout or square_layout(n)
        pics = [_gif_frame(make_grid(f, rows, cols, padding)) for f in frames]
        durations = [frame_ms] * (t - 1) + [hold_ms]

        def _write(fh: io.BufferedWriter) -> None:
            pics[0].save(fh, format="GIF", save_all=True, append_images=pics[1:],
                         duration=durations, loop=0)
        atomic_write(gif_path, _write)
    return path
