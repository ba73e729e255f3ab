"""What a sampler does to its x0 prediction: static clipping, or Imagen's dynamic thresholding.

Dynamic thresholding (Saharia et al. 2022, "Imagen", sec. 2.3): per sample, s is the p-th
quantile of |x0| (over all its pixels and channels), s = max(1, s); x0 is clipped to [-s, s]
and divided by s. Where s = 1 this is the static clip to [-1, 1]; where s > 1 the whole
sample is scaled back into the range instead of saturating. It works in [-1, 1] units: a
model with another ``data_range`` has its x0 mapped there and back.
"""
from __future__ import annotations

from typing import Optional

import paddle


def dynamic_threshold(x0: paddle.Tensor, percentile: float,
                      data_range=(-1.0, 1.0)) -> paddle.Tensor:
    """Imagen's thresholding of a batch ``x0`` [N, ...] at quantile ``percentile`` in (0, 1]."""
    lo, hi = data_range
    centre, half = (hi + lo) / 2.0, (hi - lo) / 2.0
    z = (x0 - centre) / half if (lo, hi) != (-1.0, 1.0) else x0
    flat = z.reshape([z.shape[0], -1]).abs()
    s = paddle.quantile(flat, percentile, axis=1).clip(min=1.0)      # [N], >= 1
    s = s.reshape([-1] + [1] * (len(z.shape) - 1)).astype(z.dtype)
    z = paddle.minimum(paddle.maximum(z, -s), s) / s
    return z * half + centre if (lo, hi) != (-1.0, 1.0) else z


def limit_x0(x0: paddle.Tensor, model, clip_denoised: bool,
             threshold: Optional[float]) -> paddle.Tensor:
    """x0 thresholded when ``threshold`` (a quantile) is given, else clipped to the model's
    data range when ``clip_denoised``, else as it is."""
    data_range = getattr(model, "data_range", (-1.0, 1.0))
    if threshold is not None:
        return dynamic_threshold(x0, threshold, data_range)
    if clip_denoised:
        return x0.clip(*data_range)
    return x0
