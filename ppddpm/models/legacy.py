"""The original PaddlePaddle reproduction's networks, for its published checkpoints.

Parameter names and shapes match ``tests/fixtures/original_state_dict_keys.txt``
exactly (the layer attribute names and ``nn.Sequential`` indices are part of the
checkpoint format), and the forward pass matches the original's, including its
departures from the official DDPM network (Ho et al. 2020, appendix B):

* time path: a trainable ``Embedding(T, ch)`` table, Swish, ``Linear(ch, 4ch)``
  (the official model uses a fixed sinusoidal embedding and two dense layers);
* UNet residual block: channel-wise ``Dropout2D`` and the attention *inside* the
  block; its attention returns ``proj_out(attn)`` with NO residual add;
* FPN (after bojone's Keras-DDPM): residual blocks conv-Swish, + time, conv-Swish,
  + shortcut, GroupNorm after the sum; 2x2 average pooling down, nearest 2x up, and
  every down/up layer output (pools and upsamples included) is a skip that is
  *added* after the mirrored up layer.

Data range -- read this before sampling with these nets
-------------------------------------------------------
The original fed CIFAR-10 to its UNet in [0, 1] (``ToTensor`` without normalisation)
but CelebA-HQ to its FPN in [-1, 1]. An eps-predictor learned on [0, 1] data is not
an eps-predictor for [-1, 1] data under the same schedule (mapping y = 2x - 1 also
doubles the noise, i.e. changes the signal-to-noise ratio at every t), so the only
exact way to use it is to run the diffusion in the network's own space. Each model
therefore carries ``data_range = (lo, hi)``: samplers start from N(0, I) as usual,
clip predicted x0 to ``data_range`` and map the final sample to [-1, 1] with
``(x - lo) / (hi - lo) * 2 - 1``; training maps [-1, 1] data into ``data_range``
before ``q_sample``. ``to_model_range`` / ``from_model_range`` below do the maps.

Config fields these nets ignore: ``norm_groups``, ``norm_eps`` and ``time_freq_shift``
(the original always uses GroupNorm(32) with Paddle's eps 1e-5 and a learned time
table), and for the FPN ``attn_resolutions`` and ``dropout``.
"""
from __future__ import annotations

import math
from typing import List, Tuple

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..config import ConfigError, ModelConfig
from .conv import Conv2d
from .layers import upsample_nearest2x


# -- data range helpers -------------------------------------------------------
def model_data_range(model) -> Tuple[float, float]:
    """The range the network was trained on; ppddpm's own networks use [-1, 1]."""
    lo, hi = getattr(model, "data_range", (-1.0, 1.0))
    return float(lo), float(hi)


def to_model_range(x, data_range: Tuple[float, float]):
    """Map package images in [-1, 1] into the network's ``data_range``."""
    lo, hi = data_range
    return x if (lo, hi) == (-1.0, 1.0) else (x + 1.0) * 0.5 * (hi - lo) + lo


def from_model_range(x, data_range: Tuple[float, float]):
    """Map samples in the network's ``data_range`` back to [-1, 1]."""
    lo, hi = data_range
    return x if (lo, hi) == (-1.0, 1.0) else (x - lo) / (hi - lo) * 2.0 - 1.0


# -- shared pieces --------------------------------------------------------------
def original_time_table(num_steps: int, dim: int) -> np.ndarray:
    """The original's initial embedding table, including its scrambled order.

    The original builds sin/cos of (frequency x position) as a [dim/2, T, 2] array and
    reshapes it straight to [T, dim], so row t is not the sinusoid of t. Only training
    from scratch sees this (checkpoints overwrite the table); it is kept so that a
    legacy net trained by ppddpm starts exactly where the original did.
    """
    half = dim // 2
    freqs = np.exp(np.arange(half, dtype=np.float32) * -(math.log(10000.0) / (half - 1)))
    args = freqs[:, None] * np.arange(num_steps, dtype=np.float32)[None, :]   # [half, T]
    table = np.stack([np.sin(args), np.cos(args)], axis=-1)                   # [half, T, 2]
    return table.reshape(num_steps, dim).astype(np.float32)


class TimeEmbedding(nn.Layer):
    """``embedding_time`` = Sequential(Embedding(T, ch), Swish, Linear(ch, 4ch))."""

    def __init__(self, num_steps: int, ch: int, out_dim: int):
        super().__init__()
        table = nn.Embedding(num_steps, ch)
        table.weight.set_value(original_time_table(num_steps, ch))
        self.embedding_time = nn.Sequential(table, nn.Swish(), nn.Linear(ch, out_dim))

    def forward(self, t):
        return self.embedding_time(t)


class ChannelDropout(nn.Layer):
    """The original's ``Dropout2D`` (drops whole channels), applied only in training.

    Outside training it is skipped in Python, so an exported eval graph holds no
    dropout op (``nn.Dropout2D`` breaks the oneDNN predictor).
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = float(p)

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        return F.dropout2d(x, p=self.p, training=True)


def _conv3(cin, cout, stride=1):
    return Conv2d(cin, cout, 3, stride=stride, padding=1)


def _check_plain(cfg: ModelConfig) -> None:
    if cfg.learn_sigma or cfg.num_classes is not None:
        raise ConfigError(f"model.arch={cfg.arch!r} is the original reproduction's network; it "
                          "has no learn_sigma or num_classes option (use arch 'unet' or 'fpn')")
    if cfg.ch % 32 or cfg.ch < 32:
        raise ConfigError(f"model.ch={cfg.ch} must be a multiple of 32 (GroupNorm with 32 groups)")


# -- UNet (CIFAR-10) ----------------------------------------------------------------
class LegacyAttention(nn.Layer):
    """Single-head self-attention over H*W positions, scaled by C**-0.5.

    As in the original, the block returns ``proj_out(softmax(q k^T / sqrt(C)) v)``
    without adding its input back; the surrounding residual block has no skip around it.
    """

    def __init__(self, ch: int):
        super().__init__()
        self.norm = nn.GroupNorm(32, ch)
        self.proj_q = Conv2d(ch, ch, 1)
        self.proj_k = Conv2d(ch, ch, 1)
        self.proj_v = Conv2d(ch, ch, 1)
        self.proj_out = Conv2d(ch, ch, 1)

    def forward(self, x):
        n, c, h, w = x.shape
        hn = self.norm(x)
        q = self.proj_q(hn).flatten(2).transpose([0, 2, 1])      # [N, HW, C]
        k = self.proj_k(hn).flatten(2)                           # [N, C, HW]
        v = self.proj_v(hn).flatten(2).transpose([0, 2, 1])      # [N, HW, C]
        weights = F.softmax(paddle.bmm(q, k) * (float(c) ** -0.5), axis=-1)
        out = paddle.bmm(weights, v).transpose([0, 2, 1]).reshape([n, c, h, w])
        return self.proj_out(out)


class LegacyUNetBlock(nn.Layer):
    """GN-Swish-conv, + Linear(Swish(temb)), GN-Swish-Dropout2D-conv, + shortcut, [attn]."""

    def __init__(self, cin: int, cout: int, tdim: int, dropout: float, attn: bool):
        super().__init__()
        self.temb_proj = nn.Sequential(nn.Swish(), nn.Linear(tdim, cout))
        self.conv1 = nn.Sequential(nn.GroupNorm(32, cin), nn.Swish(), _conv3(cin, cout))
        self.conv2 = nn.Sequential(nn.GroupNorm(32, cout), nn.Swish(), ChannelDropout(dropout),
                                   _conv3(cout, cout))
        self.shortcut = Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        self.attn = LegacyAttention(cout) if attn else nn.Identity()

    def forward(self, x, temb):
        h = self.conv1(x) + self.temb_proj(temb)[:, :, None, None]
        h = self.conv2(h) + self.shortcut(x)
        return self.attn(h)


class LegacyDown(nn.Layer):
    """3x3 conv with stride 2 (attribute ``down``)."""

    def __init__(self, ch: int):
        super().__init__()
        self.down = _conv3(ch, ch, stride=2)

    def forward(self, x, temb=None):
        return self.down(x)


class LegacyUp(nn.Layer):
    """Nearest 2x then 3x3 conv (the original names the conv ``conv1``)."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = _conv3(ch, ch)

    def forward(self, x, temb=None):
        return self.conv1(upsample_nearest2x(x))


class LegacyUNet(nn.Layer):
    """The original CIFAR-10 UNet (35,611,651 parameters at ch 128, ch_mult 1,2,2,2).

    Layout: ``downs`` = per level ``num_res_blocks`` blocks then a strided-conv
    downsample (not after the last level); ``middles`` = block with attention, block
    without; ``ups`` = per level (reversed) ``num_res_blocks + 1`` blocks, each fed
    ``concat([h, skip])``, then an upsample (not after level 0); every output of
    ``in_conv`` and of each ``downs`` layer is a skip. Attention is on at the levels
    whose resolution is in ``attn_resolutions`` (the original's attn_levels=[1]).
    """

    data_range = (0.0, 1.0)   # trained on CIFAR-10 in [0, 1]; see the module docstring

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        _check_plain(cfg)
        self.config = cfg
        ch, tdim, mults = cfg.ch, cfg.ch * 4, list(cfg.ch_mult)
        attn_levels = {i for i in range(len(mults)) if cfg.resolution >> i in cfg.attn_resolutions}
        self.time_emb = TimeEmbedding(cfg.num_steps, ch, tdim)
        self.in_conv = _conv3(cfg.in_channels, ch)

        self.downs = nn.LayerList()
        skips: List[int] = [ch]
        cur = ch
        for level, mult in enumerate(mults):
            for _ in range(cfg.num_res_blocks):
                self.downs.append(LegacyUNetBlock(cur, ch * mult, tdim, cfg.dropout,
                                                  level in attn_levels))
                cur = ch * mult
                skips.append(cur)
            if level != len(mults) - 1:
                self.downs.append(LegacyDown(cur))
                skips.append(cur)

        self.middles = nn.LayerList([LegacyUNetBlock(cur, cur, tdim, cfg.dropout, True),
                                     LegacyUNetBlock(cur, cur, tdim, cfg.dropout, False)])

        self.ups = nn.LayerList()
        for level in reversed(range(len(mults))):
            for _ in range(cfg.num_res_blocks + 1):
                cout = ch * mults[level]
                self.ups.append(LegacyUNetBlock(skips.pop() + cur, cout, tdim, cfg.dropout,
                                                level in attn_levels))
                cur = cout
            if level != 0:
                self.ups.append(LegacyUp(cur))

        self.out_conv = nn.Sequential(nn.GroupNorm(32, cur), nn.Swish(),
                                      _conv3(cur, cfg.out_channels))

    def forward(self, x, t, y=None):
        if y is not None:
            raise ConfigError("the legacy UNet is unconditional; call it without y")
        temb = self.time_emb(t)
        h = self.in_conv(x)
        hs = [h]
        for layer in self.downs:
            h = layer(h, temb)
            hs.append(h)
        for layer in self.middles:
            h = layer(h, temb)
        for layer in self.ups:
            if isinstance(layer, LegacyUNetBlock):
                h = paddle.concat([h, hs.pop()], axis=1)
            h = layer(h, temb)
        return self.out_conv(h)


# -- FPN (CelebA-HQ 128) ----------------------------------------------------------
class LegacyFPNBlock(nn.Layer):
    """conv-Swish, + Linear(Swish(temb)), conv-Swish, + shortcut, then GroupNorm(32)."""

    def __init__(self, cin: int, cout: int, tdim: int):
        super().__init__()
        self.temb_proj = nn.Sequential(nn.Swish(), nn.Linear(tdim, cout))
        self.conv1 = nn.Sequential(_conv3(cin, cout), nn.Swish())
        self.conv2 = nn.Sequential(_conv3(cout, cout), nn.Swish())
        self.shortcut = Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        self.out_norm = nn.GroupNorm(32, cout)

    def forward(self, x, temb):
        h = self.conv1(x) + self.temb_proj(temb)[:, :, None, None]
        h = self.conv2(h) + self.shortcut(x)
        return self.out_norm(h)


class AvgPoolDown(nn.Layer):
    """2x2 average pooling (no parameters; it still takes a ``downs`` index)."""

    def forward(self, x, temb=None):
        return F.avg_pool2d(x, kernel_size=2, stride=2)


class NearestUp(nn.Layer):
    """Nearest 2x upsampling (no parameters; it still takes an ``ups`` index)."""

    def forward(self, x, temb=None):
        return upsample_nearest2x(x)


class LegacyFPN(nn.Layer):
    """The original CelebA-HQ FPN (53,405,059 parameters at ch 128, ch_mult 1,1,2,2,4,4).

    ``downs``: per level ``num_res_blocks`` blocks, then a 2x2 average pool (not after
    the last level). ``middle``: one block. ``ups``: per level (reversed) an upsample
    (not before the deepest level) then ``num_res_blocks`` blocks. Skips are the outputs
    of ``in_conv`` and of every ``downs`` layer; the last one is dropped (the middle
    block consumes it), and every ``ups`` layer's output gets the next skip *added*.
    Block output widths follow the skips: the last block of a level already outputs
    the width of the next (shallower) level. No attention and no dropout: the
    config's ``attn_resolutions`` and ``dropout`` are ignored.
    """

    data_range = (-1.0, 1.0)   # trained on CelebA-HQ normalised to [-1, 1]

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        _check_plain(cfg)
        self.config = cfg
        ch, tdim, mults = cfg.ch, cfg.ch * 4, list(cfg.ch_mult)
        self.time_emb = TimeEmbedding(cfg.num_steps, ch, tdim)
        self.in_conv = _conv3(cfg.in_channels, ch)

        self.downs = nn.LayerList()
        widths = [ch]                      # widths of the block outputs, in_conv first
        cur = ch
        for level, mult in enumerate(mults):
            for _ in range(cfg.num_res_blocks):
                self.downs.append(LegacyFPNBlock(cur, ch * mult, tdim))
                cur = ch * mult
                widths.append(cur)
            if level != len(mults) - 1:
                self.downs.append(AvgPoolDown())

        self.middle = LegacyFPNBlock(cur, cur, tdim)

        widths = [widths[0]] + widths     # one more target: the last up block keeps ch
        cur = widths.pop()
        self.ups = nn.LayerList()
        for level in reversed(range(len(mults))):
            if level != len(mults) - 1:
                self.ups.append(NearestUp())
            for _ in range(cfg.num_res_blocks):
                cout = widths.pop()
                self.ups.append(LegacyFPNBlock(cur, cout, tdim))
                cur = cout

        self.out_conv = nn.Sequential(nn.GroupNorm(32, cur), _conv3(cur, cfg.out_channels))

    def forward(self, x, t, y=None):
        if y is not None:
            raise ConfigError("the legacy FPN is unconditional; call it without y")
        temb = self.time_emb(t)
        h = self.in_conv(x)
        hs = [h]
        for layer in self.downs:
            h = layer(h, temb)
            hs.append(h)
        h = self.middle(h, temb)
        hs.pop()
        for layer in self.ups:
            h = layer(h, temb) + hs.pop()
        return self.out_conv(h)
