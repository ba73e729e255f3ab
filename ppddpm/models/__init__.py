"""Networks: build_model(model_cfg) dispatches on model_cfg.arch."""
from __future__ import annotations

import numpy as np

from ..config import ConfigError

__all__ = ["build_model", "count_parameters", "KNOWN_ARCHS"]

KNOWN_ARCHS = ("unet", "fpn", "legacy_unet", "legacy_fpn", "mlp")


def build_model(model_cfg):
    """Build the network that ``model_cfg`` describes (a ModelConfig).

    arch: "unet" (official DDPM UNet), "fpn" (FPN-style UNet), "legacy_unet" /
    "legacy_fpn" (the original reproduction's networks, for its checkpoints), "mlp"
    (residual MLP for 2-D toy data).
    """
    arch = getattr(model_cfg, "arch", None)
    if arch == "unet":
        from .unet import UNet
        return UNet(model_cfg)
    if arch == "fpn":
        from .fpn import FPN
        return FPN(model_cfg)
    if arch in ("legacy_unet", "legacy_fpn"):
        try:
            from . import legacy
        except ImportError as exc:
            raise ConfigError(f"model.arch={arch!r} needs ppddpm.models.legacy, which "
                              f"could not be imported ({exc})") from None
        return (legacy.LegacyUNet if arch == "legacy_unet" else legacy.LegacyFPN)(model_cfg)
    if arch == "mlp":   # the 2-D toy-data network
        from .mlp import MLP
        return MLP(model_cfg)
    raise ConfigError(f"model.arch={arch!r} is not known; choose one of {list(KNOWN_ARCHS)}")


def count_parameters(model, trainable_only: bool = False) -> int:
    """Number of scalar values in the model's parameters (each shared one counted once)."""
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and p.stop_gradient):
            continue
        seen.add(id(p))
        total += int(np.prod(p.shape))
    return total
