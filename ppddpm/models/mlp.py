"""A residual MLP denoiser for 2-D toy data (and any tiny input, flattened).

  temb = swish(dense(swish(dense(sinusoidal(t, ch)))))     as the DDPM UNet's time path
  h    = dense_in([x, sin(f_k x), cos(f_k x)]) + temb       Fourier features of every input value
  h    = h + dense2(dropout(swish(dense1(h) + temb_proj(temb))))    x num_res_blocks
  out  = dense_out(swish(h))                                (zero-initialised, as the UNet's conv_out)

ModelConfig fields read: ch (hidden width), num_res_blocks, dropout, in_channels,
out_channels, resolution (input is [N, in_channels, resolution, resolution]),
learn_sigma (doubles the output channels: first out_channels are the mean output, the
rest the variance output), num_classes (optional label embedding; id num_classes = no
label), time_freq_shift. ch_mult and attn_resolutions are not used.

Paddle's dynamic graph costs tens of microseconds per op whatever the tensor size,
so a few wide layers at a large batch are far cheaper than many narrow ones.

The Fourier features (Tancik et al. 2020) use 16 fixed frequencies f_k spaced geometrically
from 1 to 100 radians per unit: an MLP fed raw coordinates learns sharp functions of them
slowly (spectral bias), and the denoiser of a tight mode (std 0.018 in gaussian25) is sharp.
"""
from __future__ import annotations

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..config import ConfigError
from .layers import Swish, add_class_embedding, linear, timestep_embedding

NUM_FREQS, MIN_FREQ, MAX_FREQ = 16, 1.0, 100.0


def fourier_features(x: paddle.Tensor, freqs: paddle.Tensor) -> paddle.Tensor:
    """[N, D] -> [N, D * (1 + 2K)]: the values, then sin(f_k x) and cos(f_k x) for K freqs."""
    args = x.unsqueeze(2) * freqs.reshape([1, 1, -1])
    half_sin = paddle.sin(args * 0.5)   # cos a = 1 - 2 sin^2(a/2): see layers.timestep_embedding
    feats = paddle.concat([paddle.sin(args), 1.0 - 2.0 * half_sin * half_sin], axis=2)
    return paddle.concat([x, feats.reshape([x.shape[0], -1])], axis=1)


class MLPBlock(nn.Layer):
    """Residual block with the time embedding added in the middle (the DDPM ResBlock with
    dense layers in place of convolutions; dense2 is zero-initialised)."""

    def __init__(self, width: int, dropout: float = 0.0):
        super().__init__()
        self.dense1 = linear(width, width)
        self.temb_proj = linear(width, width)
        self.dropout = nn.Dropout(dropout)
        self.dense2 = linear(width, width, zero=True)

    def forward(self, h, temb_act):
        # dense1 reads h directly: a swish of h (which the residual still needs) is run in
        # place by Paddle 3.3's inference inplace_pass and corrupts h once exported.
        u = self.dense1(h) + self.temb_proj(temb_act)
        return h + self.dense2(self.dropout(F.silu(u)))


class MLP(nn.Layer):
    """forward(x [N,C,H,W] float32, t [N] int64, y [N] int64 or None) -> [N, C_out(x2), H, W]."""

    def __init__(self, cfg):
        super().__init__()
        if cfg.ch < 2 or cfg.num_res_blocks < 0 or cfg.resolution < 1 or cfg.in_channels < 1:
            raise ConfigError(f"model.arch='mlp' needs ch >= 2, num_res_blocks >= 0, resolution "
                              f">= 1 and in_channels >= 1; got ch={cfg.ch}, num_res_blocks="
                              f"{cfg.num_res_blocks}, resolution={cfg.resolution}, "
                              f"in_channels={cfg.in_channels}")
        if cfg.num_classes is not None and cfg.num_classes < 1:
            raise ConfigError(f"model.num_classes={cfg.num_classes} must be >= 1 or null")
        width = cfg.ch
        self.ch = width
        self.freq_shift = float(getattr(cfg, "time_freq_shift", 1.0))
        self.num_classes = cfg.num_classes
        self.res = cfg.resolution
        self.out_ch = cfg.out_channels * (2 if cfg.learn_sigma else 1)
        self.temb = nn.Sequential(linear(width, width), Swish(), linear(width, width))
        if cfg.num_classes is not None:
            self.label_emb = nn.Embedding(cfg.num_classes + 1, width)
        freqs = np.geomspace(MIN_FREQ, MAX_FREQ, NUM_FREQS).astype(np.float32)
        self.register_buffer("freqs", paddle.to_tensor(freqs), persistable=False)
        num_in = cfg.in_channels * self.res * self.res
        self.dense_in = linear(num_in * (1 + 2 * NUM_FREQS), width)
        self.blocks = nn.LayerList([MLPBlock(width, cfg.dropout) for _ in range(cfg.num_res_blocks)])
        self.dense_out = linear(width, self.out_ch * self.res * self.res, zero=True)

    def embed(self, t, y=None):
        temb = self.temb(timestep_embedding(t, self.ch, self.freq_shift))
        return add_class_embedding(temb, t, y, getattr(self, "label_emb", None), self.num_classes)

    def forward(self, x, t, y=None):
        n = x.shape[0]
        temb = F.silu(self.embed(t, y))
        h = self.dense_in(fourier_features(x.reshape([n, -1]), self.freqs)) + temb
        for block in self.blocks:
            h = block(h, temb)
        out = self.dense_out(F.silu(h))
        return out.reshape([n, self.out_ch, self.res, self.res])
