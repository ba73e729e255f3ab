"""Networks: ``build_model(model_cfg)`` builds the one that ``model_cfg.arch`` names."""
from __future__ import annotations

import numpy as np

from ..config import ConfigError
from ..config.names import ARCHS
from .adm import ADMClassifier, ADMUNet
from .fpn import FPN
from .legacy import LegacyFPN, LegacyUNet
from .mlp import MLP
from .unet import UNet

__all__ = ["build_model", "count_parameters", "NETWORKS"]

# model.arch -> network class; the names are config.names.ARCHS, in its order:
#   unet: the official DDPM UNet; fpn: the FPN-style UNet; legacy_unet / legacy_fpn: the
#   original reproduction's networks, for its checkpoints; mlp: a residual MLP for 2-D data;
#   adm / adm_classifier: improved-/guided-diffusion's UNet and noisy classifier.
NETWORKS = {"unet": UNet, "fpn": FPN, "legacy_unet": LegacyUNet, "legacy_fpn": LegacyFPN,
            "mlp": MLP, "adm": ADMUNet, "adm_classifier": ADMClassifier}
assert tuple(NETWORKS) == ARCHS, "a network name without its class, or the reverse"


def build_model(model_cfg):
    """Build the network that ``model_cfg`` (a ModelConfig) describes."""
    arch = getattr(model_cfg, "arch", None)
    if arch not in NETWORKS:
        raise ConfigError(f"model.arch={arch!r} is not known; choose one of {list(ARCHS)}")
    return NETWORKS[arch](model_cfg)


def count_parameters(model, trainable_only: bool = False) -> int:
    """Number of scalar values in the model's parameters (each shared one counted once)."""
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and p.stop_gradient):
            continue
        seen.add(id(p))
        total += int(np.prod(p.shape))
    return total
