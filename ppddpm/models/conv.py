"""Conv2d: ``paddle.nn.Conv2D`` whose dynamic-graph forward and backward run on oneDNN.

Same parameters, state-dict keys, initialisation and maths as ``nn.Conv2D``; only the
kernels differ (``onednn.py``). Used for every conv of the networks:

* ``auto`` (default): oneDNN when it applies: dynamic graph, CPU tensors, float32, groups
  1, no dilation, zero padding, NCHW, the wheel's oneDNN loads, and the conv has at least
  ``MIN_FLOPS`` (below that the Python around the call costs more than oneDNN saves;
  docs/speed.md, "Training: oneDNN convolutions", gives the crossover). Paddle's conv otherwise.
  ``paddle.jit.save`` (the sampling engine) always traces Paddle's conv, because a static
  program is not the dynamic graph.
* ``onednn``: as auto for every size, and an unusable library is an error instead of a
  silent fallback.
* ``paddle``: Paddle's own kernels everywhere (the reference the tests compare against).

Choose with ``set_conv_backend(name)``, ``--conv_backend`` on the run scripts, or the
``PPDDPM_CONV_BACKEND`` environment variable.
"""
from __future__ import annotations

import os
from typing import Optional

import paddle
import paddle.nn as nn
from paddle.autograd import PyLayer

from ..config import ConfigError
from . import onednn

BACKENDS = ("auto", "onednn", "paddle")
MIN_FLOPS = 2e6   # auto: forward FLOPs from which oneDNN is faster (docs/speed.md)
_backend = os.environ.get("PPDDPM_CONV_BACKEND", "auto").strip().lower() or "auto"


def set_conv_backend(name: str) -> None:
    """Select the dynamic-graph conv kernels for this process: auto | onednn | paddle."""
    global _backend
    name = str(name).strip().lower()
    if name not in BACKENDS:
        raise ConfigError(f"conv backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    if name == "onednn":
        ok, why = onednn.available()
        if not ok:
            raise onednn.OneDNNUnavailable(f"--conv_backend onednn: {why}; use auto or paddle")
    _backend = name


def conv_backend() -> str:
    if _backend not in BACKENDS:   # a bad PPDDPM_CONV_BACKEND
        raise ConfigError(f"PPDDPM_CONV_BACKEND must be one of {', '.join(BACKENDS)}, "
                         f"got {_backend!r}")
    return _backend


def onednn_enabled() -> bool:
    """Whether convs on eligible tensors go to oneDNN in this process."""
    return conv_backend() != "paddle" and onednn.available()[0]


class _OneDNNConv2d(PyLayer):
    """y = conv(x, w) + b with oneDNN forward, backward-data and backward-weights."""

    @staticmethod
    def forward(ctx, plan, x, w, b=None):
        ctx.plan = plan
        ctx.need_dx = not x.stop_gradient
        ctx.save_for_backward(x, w)
        return plan.forward(x, w, b)

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensor()
        dy = dy if dy.is_contiguous() else dy.contiguous()
        dx, dw, db = ctx.plan.backward(x, w, dy, need_dx=ctx.need_dx)
        return (dx, dw) if db is None else (dx, dw, db)


def _explicit_padding(layer: nn.Conv2D) -> Optional[list]:
    """(top, bottom, left, right), or None when the padding is not plain zeros."""
    if layer._padding_algorithm != "EXPLICIT" or layer._padding_mode != "zeros":
        return None
    pad = [int(p) for p in layer._updated_padding]
    if len(pad) == 2:
        return [pad[0], pad[0], pad[1], pad[1]]
    return pad if len(pad) == 4 else None


def _forward_flops(x_shape, w_shape, stride, pad) -> float:
    _, o, oh, ow = onednn.conv_output_shape(x_shape, w_shape, stride, pad)
    _, c, kh, kw = w_shape
    return 2.0 * x_shape[0] * o * oh * ow * c * kh * kw


class Conv2d(nn.Conv2D):
    """nn.Conv2D with oneDNN kernels in the dynamic graph (see the module docstring)."""

    def _onednn_plan(self, x):
        if not paddle.in_dynamic_mode() or conv_backend() == "paddle":
            return None
        if (x.dtype != paddle.float32 or self.weight.dtype != paddle.float32
                or not x.place.is_cpu_place() or self._groups != 1
                or self._data_format != "NCHW" or list(self._dilation) != [1, 1]
                or len(x.shape) != 4):
            return None
        pad = _explicit_padding(self)
        if pad is None or not onednn.available()[0]:
            return None
        if _backend == "auto" and _forward_flops(x.shape, self.weight.shape, self._stride,
                                                 pad) < MIN_FLOPS:
            return None
        return onednn.conv_plan(x.shape, self.weight.shape, self.bias is not None,
                                list(self._stride), pad)

    def forward(self, x):
        plan = self._onednn_plan(x)
        if plan is None or (not self.training and paddle.is_grad_enabled()):
            # eval with gradients (e.g. d log p(y|x)/dx through a classifier): paddle.grad
            # asks the oneDNN PyLayer for dx alone and refuses its dw, which it cannot omit
            return super().forward(x)
        if not x.is_contiguous():
            x = x.contiguous()
        if self.bias is None:
            return _OneDNNConv2d.apply(plan, x, self.weight)
        return _OneDNNConv2d.apply(plan, x, self.weight, self.bias)
