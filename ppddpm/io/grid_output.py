"""How ``--mode denoise`` lays out and writes its images: ``--nrow``, ``--to_grayscale``,
``--save_path`` and ``--show`` (the options users of the PyTorch DDPM repositories expect).

``--num_images`` gives N (and, as N-R-C, a layout); ``--nrow K`` puts K images in each row,
with ceil(N / K) rows, the last one partly empty when K does not divide N.
"""
from __future__ import annotations

import math
import os
import sys
from typing import Callable, NamedTuple, Optional, Tuple

from PIL import Image, ImageShow

from ..config import ConfigError
from .images import to_grayscale


class SamplePaths(NamedTuple):
    grid: str          # the final samples
    sequence: str      # --sequence: predicted x0 over time
    sequence_xt: str   # --sequence: x_t over time
    gif: str           # --sequence: the animation


def grid_layout(n: int, rows: int, cols: int, nrow: Optional[int] = None) -> Tuple[int, int]:
    """(rows, cols) of the grid: N-R-C's, or ceil(n / nrow) rows of ``nrow``."""
    if nrow is None:
        return rows, cols
    if nrow < 1:
        raise ConfigError(f"--nrow {nrow}: give the number of images per row (>= 1)")
    return int(math.ceil(n / nrow)), nrow


def maybe_grey(images, grayscale: bool):
    """uint8 NHWC images, turned grey when ``grayscale`` (--to_grayscale)."""
    return to_grayscale(images) if grayscale else images


def sample_paths(out_dir: str, postfix: str, save_path: Optional[str] = None) -> SamplePaths:
    """File names of denoise's outputs. ``--sequence`` writes its main image (predicted x0
    over time) under the grid's name, ``sample_{postfix}.png``, as the original did, with
    the x_t strip and GIF beside it; ``save_path`` replaces the grid's name."""
    grid = save_path or os.path.join(out_dir, f"sample_{postfix}.png")
    stem = os.path.splitext(grid)[0]
    return SamplePaths(grid, grid, f"{stem}_xt.png", f"{stem}.gif")


def display_available(env=None, platform: Optional[str] = None) -> bool:
    """Whether a window can open: macOS and Windows always, elsewhere an X or Wayland display."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if platform == "darwin" or platform.startswith("win"):
        return True
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def show_image(path: str, say: Callable[[str], None]) -> bool:
    """--show: open ``path`` in Pillow's image viewer when there is a display; otherwise
    (or when no viewer is installed) say where the file is. Returns whether it opened."""
    if not display_available():
        say(f"--show: no display here ($DISPLAY and $WAYLAND_DISPLAY are unset); "
            f"the image is at {os.path.abspath(path)}")
        return False
    with Image.open(path) as img:
        opened = bool(ImageShow.show(img, title=os.path.basename(path)))
    if not opened:
        say(f"--show: no image viewer found (Pillow's ImageShow tried xdg-open, display, eog, "
            f"feh, ...); the image is at {os.path.abspath(path)}")
    return opened
