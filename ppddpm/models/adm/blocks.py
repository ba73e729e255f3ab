"""The building blocks of improved-diffusion's and guided-diffusion's networks (the adm family).

Sub-layer names and weight shapes are upstream's (``in_layers.0``, ``emb_layers.1``,
``out_layers.3``, ``skip_connection``, ``op``, ``conv``), so a converter only transposes
the Linear weights; the indices of upstream's ``nn.Sequential`` are kept by using
``nn.Sequential`` here too. Everything exports to the Paddle Inference predictor:
nearest upsampling is expand + reshape, 1-d convolutions are matmuls.
"""
from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..conv import Conv2d
from ..layers import Swish, swish, timestep_embedding, upsample_nearest2x

_ZERO = nn.initializer.Constant(0.0)


def adm_timestep_embedding(t, dim: int) -> paddle.Tensor:
    """Upstream's sinusoidal embedding (guided_diffusion/nn.py): [cos(t f_i), sin(t f_i)],
    f_i = 10000^(-i / half). ``t`` may be fractional (rescaled timesteps)."""
    half = dim // 2
    emb = timestep_embedding(t, 2 * half, freq_shift=0.0)      # [sin | cos], export-safe
    emb = paddle.concat([emb[:, half:], emb[:, :half]], axis=1)
    if dim % 2:
        emb = paddle.concat([emb, paddle.zeros_like(emb[:, :1])], axis=1)
    return emb


def norm(ch: int, groups: int = 32, eps: float = 1e-5) -> nn.GroupNorm:
    """Upstream's GroupNorm32: 32 groups, PyTorch's eps 1e-5, computed in float32."""
    return nn.GroupNorm(groups, ch, epsilon=eps)


def conv(cin: int, cout: int, kernel: int = 3, stride: int = 1, zero: bool = False) -> Conv2d:
    return Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2,
                  weight_attr=_ZERO if zero else None, bias_attr=_ZERO if zero else None)


def linear(cin: int, cout: int) -> nn.Linear:
    return nn.Linear(cin, cout)


class Conv1x1d(nn.Layer):
    """PyTorch's ``Conv1d(cin, cout, 1)`` on [N, C, L]: weight [cout, cin, 1], bias [cout],
    run as a matmul (no conv1d in the exported graph)."""

    def __init__(self, cin: int, cout: int, zero: bool = False):
        super().__init__()
        init = _ZERO if zero else nn.initializer.KaimingUniform()
        self.weight = self.create_parameter([cout, cin, 1], default_initializer=init)
        self.bias = self.create_parameter([cout], is_bias=True, default_initializer=_ZERO)

    def forward(self, x):
        return paddle.matmul(self.weight.squeeze(-1), x) + self.bias.unsqueeze(-1)


class Upsample(nn.Layer):
    """Nearest 2x, then a 3x3 conv when ``use_conv`` (key ``conv``)."""

    def __init__(self, ch: int, use_conv: bool):
        super().__init__()
        self.conv = conv(ch, ch) if use_conv else None

    def forward(self, x):
        x = upsample_nearest2x(x)
        return self.conv(x) if self.conv is not None else x


class Downsample(nn.Layer):
    """Stride-2 3x3 conv (padding 1 on every side, PyTorch's) or 2x2 average pooling."""

    def __init__(self, ch: int, use_conv: bool):
        super().__init__()
        self.op = conv(ch, ch, stride=2) if use_conv else nn.AvgPool2D(2, 2)

    def forward(self, x):
        return self.op(x)


class ResBlock(nn.Layer):
    """Upstream's ResBlock (ADM, Dhariwal & Nichol 2021, sec. 3):

    h = conv(swish(norm(x)))              resampled between swish and conv when up/down
    h = h + W emb                         or, with scale-shift norm (AdaGN),
    h = norm(h) * (1 + scale) + shift     [scale, shift] = W emb
    out = skip(x) + conv0(dropout(swish(norm(h))))
    """

    def __init__(self, cin: int, emb_ch: int, dropout: float, cout: int, scale_shift: bool,
                 up: bool = False, down: bool = False, groups: int = 32, eps: float = 1e-5):
        super().__init__()
        self.scale_shift = scale_shift
        self.in_layers = nn.Sequential(norm(cin, groups, eps), Swish(), conv(cin, cout))
        self.updown = up or down
        if up:
            self.h_upd, self.x_upd = Upsample(cin, False), Upsample(cin, False)
        elif down:
            self.h_upd, self.x_upd = Downsample(cin, False), Downsample(cin, False)
        self.emb_layers = nn.Sequential(Swish(), linear(emb_ch, 2 * cout if scale_shift else cout))
        self.out_layers = nn.Sequential(norm(cout, groups, eps), Swish(), nn.Dropout(dropout),
                                        conv(cout, cout, zero=True))
        self.skip_connection = conv(cin, cout, kernel=1) if cin != cout else None

    def forward(self, x, emb_act):
        """``emb_act`` = swish(emb), computed once by the network (emb_layers.0 is that
        swish): an exported graph with several swish of one tensor runs them in place."""
        if self.updown:
            h = self.in_layers[1](self.in_layers[0](x))
            h, x = self.in_layers[2](self.h_upd(h)), self.x_upd(x)
        else:
            h = self.in_layers(x)
        e = self.emb_layers[1](emb_act).unsqueeze([2, 3])
        if self.scale_shift:
            scale, shift = paddle.split(e, 2, axis=1)
            h = self.out_layers[0](h) * (1.0 + scale) + shift
        else:
            h = self.out_layers[0](h + e)
        h = self.out_layers[3](self.out_layers[2](swish(h)))
        return h + (self.skip_connection(x) if self.skip_connection is not None else x)


class TimestepSequential(nn.Sequential):
    """Upstream's TimestepEmbedSequential: residual blocks get the embedding too."""

    def forward(self, x, emb_act):
        for layer in self._sub_layers.values():
            x = layer(x, emb_act) if isinstance(layer, ResBlock) else layer(x)
        return x


class Mean2d(nn.Layer):
    """Global average over H and W, keeping [N, C, 1, 1] (AdaptiveAvgPool2d((1, 1)))."""

    def forward(self, x):
        return x.mean(axis=[2, 3], keepdim=True)


class Flatten(nn.Layer):
    def forward(self, x):
        return x.flatten(1)


class GroupNorm1d(nn.GroupNorm):
    """GroupNorm over the features of [N, C] (guided-diffusion's spatial_v2 head)."""

    def forward(self, x):
        return super().forward(x.unsqueeze([2, 3])).squeeze([2, 3])


class ReLU(nn.Layer):
    def forward(self, x):
        return F.relu(x)
