"""ppddpm: denoising diffusion models (DDPM, DDIM, Improved DDPM) in PaddlePaddle."""
__version__ = "0.1.0"

import os  # noqa: E402
import warnings  # noqa: E402

# Before Paddle loads: its C++ INFO and WARNING lines (glog) would break the progress bars
# (progress.py); errors still print, and GLOG_minloglevel=0 brings the rest back.
os.environ.setdefault("GLOG_minloglevel", "2")

# Paddle warns about a missing C++ compiler cache at import; it concerns only custom ops.
warnings.filterwarnings("ignore", message="No ccache found")

# Before Paddle is imported (by .diffusion): it sets OMP_NUM_THREADS=1 when unset, hiding
# the user's value, which the sampling engine honours (threads.py).
from . import threads as _threads  # noqa: E402,F401

from .diffusion import GaussianDiffusion, LossType, MeanType, VarType  # noqa: E402
from .respace import respace, space_timesteps  # noqa: E402
from .samplers import DDIMSampler, DDPMSampler  # noqa: E402
from .schedules import get_beta_schedule  # noqa: E402

__all__ = ["__version__", "get_beta_schedule", "GaussianDiffusion", "MeanType", "VarType",
           "LossType", "DDPMSampler", "DDIMSampler", "respace", "space_timesteps",
           "build_model", "load_pretrained"]


def __getattr__(name):
    # The networks and file loaders import lazily, so the math core stays light.
    if name == "build_model":
        from .models import build_model
        return build_model
    if name == "load_pretrained":
        from .pretrained import load_pretrained
        return load_pretrained
    raise AttributeError(f"module 'ppddpm' has no attribute {name!r}")
