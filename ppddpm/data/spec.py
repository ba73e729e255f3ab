"""The model must take what the data set gives: one check before training starts.

A data set declares ``channels`` and ``image_size`` (see ``ppddpm.data``). The model's
``in_channels`` and ``out_channels`` (the eps/x0 channels; the network doubles them
itself when it learns the variance) must equal the channels, and its ``resolution``
the size. Without this check a 1-channel model fed RGB images fails deep inside
oneDNN ("conv forward failed"), and a size mismatch trains at one size and samples
at another.
"""
from __future__ import annotations

from ..config import ConfigError, ModelConfig


def check_model_matches_data(dataset, model_cfg: ModelConfig) -> None:
    """Raise a one-line ConfigError when ``model_cfg`` cannot take ``dataset``'s items.
    A data set that declares neither attribute is not checked."""
    channels = getattr(dataset, "channels", None)
    size = getattr(dataset, "image_size", None)
    name = type(dataset).__name__
    if channels is not None:
        for key in ("in_channels", "out_channels"):
            value = getattr(model_cfg, key)
            if value != channels:
                raise ConfigError(
                    f"the data set ({name}) has {channels} channel(s) but model.{key}="
                    f"{value}; set -o model.in_channels={channels} -o model.out_channels="
                    f"{channels} (or -o data.channels={value} for an image folder)")
    if size is not None and model_cfg.resolution != size:
        raise ConfigError(f"the data set ({name}) has {size}x{size} images but model.resolution="
                          f"{model_cfg.resolution}; set --image_size {size} (it sets both "
                          "data.image_size and model.resolution)")
