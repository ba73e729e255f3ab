"""ppddpm: denoising diffusion models (DDPM, DDIM, Improved DDPM) in PaddlePaddle."""
import os
import warnings

# Before Paddle loads: its C++ INFO and WARNING lines (glog) would break the progress bars
# (runtime/progress.py); errors still print, and GLOG_minloglevel=0 brings the rest back.
os.environ.setdefault("GLOG_minloglevel", "2")

# Paddle warns about a missing C++ compiler cache at import; it concerns only custom ops.
warnings.filterwarnings("ignore", message="No ccache found")

# Before Paddle is imported (by .diffusion): it sets OMP_NUM_THREADS=1 when unset, hiding
# the user's value, which the sampling engine honours (runtime/threads.py).
from .runtime import threads as _threads  # noqa: E402,F401

from .convert.pretrained import load_pretrained  # noqa: E402
from .diffusion import (GaussianDiffusion, LossType, MeanType, VarType, get_beta_schedule,  # noqa: E402
                        respace, space_timesteps)
from .models import build_model  # noqa: E402
from .samplers import DDIMSampler, DDPMSampler  # noqa: E402
from .version import __version__  # noqa: E402

__all__ = ["__version__", "get_beta_schedule", "GaussianDiffusion", "MeanType", "VarType",
           "LossType", "DDPMSampler", "DDIMSampler", "respace", "space_timesteps",
           "build_model", "load_pretrained"]
