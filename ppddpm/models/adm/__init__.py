"""The adm family: improved-diffusion's and guided-diffusion's UNet (arch ``adm``) and
guided-diffusion's noisy classifier (arch ``adm_classifier``), with upstream's names."""
from __future__ import annotations

from .classifier import ADMClassifier
from .unet import ADMUNet

__all__ = ["ADMUNet", "ADMClassifier"]
