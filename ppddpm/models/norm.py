"""GroupNorm whose dynamic-graph training pass on the CPU runs on Paddle's batch-norm kernels.

Paddle's CPU ``group_norm`` forward and backward took 3-4 times as long as torch's on the
small UNets' activations, and they were the largest cost after the convolutions. Group
normalisation is two batch normalisations, each with kernels that are fast on the CPU:

1. normalise: the input seen as ``[1, N * G, C / G * H * W]`` is batch-normalised with batch
   statistics, no scale or shift: every (example, group) row gets zero mean and unit variance
   over its C / G * H * W values, with the biased variance and ``epsilon`` inside the root,
   exactly GroupNorm's statistics (Wu & He 2018, eq. 1-2);
2. scale and shift per channel: batch norm with fixed statistics (mean 0, variance 1,
   epsilon 0: ``use_global_stats``) is ``y = x * weight + bias``, and its backward gives the
   per-channel weight and bias gradients in one pass.

Values and all three gradients agree with ``nn.GroupNorm`` to float32 rounding
(tests/test_norm.py). Only the training pass (``self.training``) in the dynamic graph on CPU
float32 tensors takes this path; evaluation, sampling, exported programs and GPUs run
``nn.GroupNorm``'s own kernel, so samples are unchanged. The trainer turns it on for models
up to 10M weights only (``use_batch_norm_kernels``): on the CIFAR-10 UNet at batch 8 with two
threads it was not faster. ``PPDDPM_GROUP_NORM=paddle`` switches it off everywhere.
"""
from __future__ import annotations

import os

import paddle
import paddle.nn as nn
import paddle.nn.functional as F


_use_batch_norm = True


def use_batch_norm_kernels(on: bool) -> None:
    """Whether training passes in this process take the batch-norm path (the trainer's choice)."""
    global _use_batch_norm
    _use_batch_norm = bool(on)


def fast_path_enabled() -> bool:
    return _use_batch_norm and os.environ.get("PPDDPM_GROUP_NORM", "auto").strip().lower() != "paddle"


class GroupNorm(nn.GroupNorm):
    """nn.GroupNorm (same parameters, state-dict keys and maths), see the module docstring."""

    def forward(self, x):
        if not (self.training and paddle.in_dynamic_mode() and x.ndim == 4
                and x.dtype == paddle.float32 and x.place.is_cpu_place()
                and self.weight is not None and self.bias is not None
                and self._data_format == "NCHW" and fast_path_enabled()):
            return super().forward(x)
        n, c, h, w = x.shape
        groups = self._num_groups
        # 1. zero mean, unit variance per (example, group); the running statistics the kernel
        # updates are scratch tensors, dropped after the call
        rows = n * groups
        normed = F.batch_norm(x.reshape([1, rows, -1]), paddle.zeros([rows]), paddle.ones([rows]),
                              training=True, epsilon=self._epsilon).reshape([n, c, h, w])
        # 2. y = normed * weight + bias per channel (fixed statistics 0 and 1, epsilon 0)
        return F.batch_norm(normed, paddle.zeros([c]), paddle.ones([c]), self.weight, self.bias,
                            training=True, epsilon=0.0, use_global_stats=True)
