"""Linear layers and batched products whose dynamic-graph forward and backward run on oneDNN.

Same parameters, state-dict keys and maths as ``nn.Linear`` and ``paddle.matmul``; only the
kernels differ (``onednn_matmul.py``). The choice follows the conv backend
(``conv.set_conv_backend``, ``--conv_backend``, ``PPDDPM_CONV_BACKEND``): ``paddle`` keeps
Paddle's kernels everywhere; ``auto`` and ``onednn`` use oneDNN in the dynamic graph on CPU
float32 tensors from ``MIN_FLOPS`` up. Exported programs (the sampling engines) always trace
Paddle's own ``matmul``.
"""
from __future__ import annotations

import paddle
import paddle.nn as nn
from paddle.autograd import PyLayer

from . import onednn_matmul
from .conv import conv_backend, onednn_enabled

MIN_FLOPS = 1e6   # below this the Python around a oneDNN call costs more than it saves
# auto: a linear layer over fewer rows (the time embedding's: one row per example) is bound
# by reading its weights, where Paddle's kernel is as fast as PyTorch's (benchmarks/RESULTS.md,
# "Fifth session"), so it keeps Paddle's
MIN_ROWS = 64


def _use_onednn(flops: float, *tensors) -> bool:
    if not paddle.in_dynamic_mode() or conv_backend() == "paddle":
        return False
    if any(t.dtype != paddle.float32 or not t.place.is_cpu_place() for t in tensors):
        return False
    return (conv_backend() == "onednn" or flops >= MIN_FLOPS) and onednn_enabled()


def _contiguous(t):
    return t if t.is_contiguous() else t.contiguous()


class _OneDNNLinear(PyLayer):
    """y = x W + b on rows x [R, K], W [K, N]: dx = dy W^T, dW = x^T dy, db = 1^T dy."""

    @staticmethod
    def forward(ctx, x, w, b=None):
        ctx.need_dx = not x.stop_gradient
        ctx.save_for_backward(x, w)
        return onednn_matmul.matmul(x, w, bias=b.reshape([1, -1]) if b is not None else None)

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensor()
        dy = _contiguous(dy)
        dx = onednn_matmul.matmul(dy, w, trans_b=True) if ctx.need_dx else None
        dw = onednn_matmul.matmul(x, dy, trans_a=True)
        # db = 1^T dy: a product with a row of ones is faster than Paddle's column sum
        db = onednn_matmul.matmul(paddle.ones([1, dy.shape[0]], dtype="float32"), dy)
        return dx, dw, db.reshape([-1])


class _OneDNNLinearNoBias(_OneDNNLinear):
    @staticmethod
    def backward(ctx, dy):
        return _OneDNNLinear.backward(ctx, dy)[:2]


class _OneDNNBatchedMatmul(PyLayer):
    """y = a op(b) on [B, M, K] x [B, K, N] (or [B, N, K] with trans_b):
    da = dy op(b)^T; db = a^T dy, or dy^T a when trans_b."""

    @staticmethod
    def forward(ctx, a, b, trans_b):
        ctx.trans_b = trans_b
        ctx.save_for_backward(a, b)
        return onednn_matmul.matmul(a, b, trans_b=trans_b)

    @staticmethod
    def backward(ctx, dy):
        a, b = ctx.saved_tensor()
        dy = _contiguous(dy)
        da = onednn_matmul.matmul(dy, b, trans_b=not ctx.trans_b)
        db = (onednn_matmul.matmul(dy, a, trans_a=True) if ctx.trans_b
              else onednn_matmul.matmul(a, dy, trans_a=True))
        return da, db


def _grad_safe(layer_training: bool) -> bool:
    # eval with gradients (d log p(y|x)/dx through a classifier): paddle.grad asks a PyLayer
    # for one input's gradient alone, so those calls keep Paddle's own kernels (as conv does)
    return layer_training or not paddle.is_grad_enabled()


def batched_matmul(a, b, transpose_y: bool = False, training: bool = True):
    """paddle.matmul(a, b, transpose_y=...) for [B, M, K] operands, on oneDNN when it applies."""
    if not paddle.in_dynamic_mode():   # an exported program: Paddle's own matmul
        return paddle.matmul(a, b, transpose_y=transpose_y)
    if (len(a.shape) == 3 and len(b.shape) == 3 and a.shape[0] == b.shape[0]
            and _grad_safe(training)
            and _use_onednn(2.0 * a.shape[0] * a.shape[1] * a.shape[2]
                            * (b.shape[1] if transpose_y else b.shape[2]), a, b)):
        return _OneDNNBatchedMatmul.apply(_contiguous(a), _contiguous(b), transpose_y)
    return paddle.matmul(a, b, transpose_y=transpose_y)


class Linear(nn.Linear):
    """nn.Linear with oneDNN kernels in the dynamic graph (see the module docstring)."""

    def forward(self, x):
        if not paddle.in_dynamic_mode():   # an exported program: Paddle's own matmul
            return super().forward(x)
        return self._dynamic_forward(x)

    def _dynamic_forward(self, x):
        k, n = self.weight.shape
        rows = 1
        for d in x.shape[:-1]:
            rows *= d
        flops = 2.0 * rows * k * n if rows >= MIN_ROWS else 0.0   # 0: below auto's floor
        if (len(x.shape) < 2 or rows == 0 or not _grad_safe(self.training)
                or not _use_onednn(flops, x, self.weight)):
            return super().forward(x)
        x2 = _contiguous(x).reshape([rows, k])
        if self.bias is None:
            y = _OneDNNLinearNoBias.apply(x2, self.weight)
        else:
            y = _OneDNNLinear.apply(x2, self.weight, self.bias)
        return y.reshape(list(x.shape[:-1]) + [n])
