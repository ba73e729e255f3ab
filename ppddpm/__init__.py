"""ppddpm: denoising diffusion models in PaddlePaddle."""
__version__ = "0.1.0"
