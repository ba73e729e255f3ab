"""Batched generation: images in batches, each with its own noise, and progressive frames."""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from ..io.images import to_uint8
from ..runtime.progress import progress as progress_display
from .base import Sampler
from .classifier_guidance import ClassifierGuidance


def image_shape(model_cfg) -> List[int]:
    """[C, H, W] of one image of the network ``model_cfg`` describes."""
    return [model_cfg.in_channels, model_cfg.resolution, model_cfg.resolution]


def _batch_labels(labels, start: int, n: int):
    return None if labels is None else np.asarray(labels, dtype=np.int64)[start:start + n]


def generate(model, sampler: Sampler, num_images: int, shape: Sequence[int], batch_size: int,
             seed: int = 0, index_offset: int = 0, progress: bool = True,
             labels: Optional[Sequence[int]] = None, guidance_scale: float = 0.0,
             classifier: Optional[ClassifierGuidance] = None) -> np.ndarray:
    """Draw ``num_images`` images in batches; returns uint8 NHWC.

    Image i always gets the noise of (seed, index_offset + i), whatever the batch size, and
    the class ``labels[i]`` (a conditional model; guided when ``guidance_scale`` != 0;
    towards it by ``classifier`` guidance when given).
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    out = [np.zeros([0] + list(shape[1:]) + [shape[0]], dtype=np.uint8)]  # NHWC, for n = 0
    # one batch: the sampler's display over its steps says it all
    bar = progress_display(total=num_images, desc="images", unit="img",
                           enabled=progress and num_images > batch_size)
    for start in range(0, num_images, batch_size):
        n = min(batch_size, num_images - start)
        x = sampler.sample(model, [n] + list(shape), seed=seed,
                           index_offset=index_offset + start, progress=progress,
                           y=_batch_labels(labels, start, n), guidance_scale=guidance_scale,
                           classifier=classifier)
        out.append(to_uint8(x))
        bar.update(n)
    bar.close()
    return np.concatenate(out, axis=0)


def default_sequence_every(sampler: Sampler) -> int:
    """About 20 frames per run: every 50 DDPM steps of 1000, every 5 steps of a 100-step DDIM."""
    return max(1, sampler.num_steps // 20)


def generate_sequence(model, sampler: Sampler, num_images: int, shape: Sequence[int],
                      batch_size: int, every: Optional[int] = None, seed: int = 0,
                      progress: bool = True, labels: Optional[Sequence[int]] = None,
                      guidance_scale: float = 0.0,
                      classifier: Optional[ClassifierGuidance] = None):
    """Progressive generation: (pred_x0 frames, x_t frames), each a list over time of uint8
    NHWC; ``labels``/``guidance_scale``/``classifier`` as in ``generate``."""
    every = every or default_sequence_every(sampler)
    x0_frames: List[List[np.ndarray]] = []
    xt_frames: List[List[np.ndarray]] = []
    for start in range(0, num_images, batch_size):
        n = min(batch_size, num_images - start)
        x0_b, xt_b = [], []
        for i, frame in enumerate(sampler.progressive(model, [n] + list(shape), every=every,
                                                      seed=seed, index_offset=start,
                                                      progress=progress,
                                                      y=_batch_labels(labels, start, n),
                                                      guidance_scale=guidance_scale,
                                                      classifier=classifier)):
            x0_b.append(to_uint8(frame["pred_x0"]))
            xt_b.append(to_uint8(frame["x"]))
        x0_frames.append(x0_b)
        xt_frames.append(xt_b)
    join = lambda per_batch: [np.concatenate([b[k] for b in per_batch])
                              for k in range(len(per_batch[0]))]
    return join(x0_frames), join(xt_frames)
