"""Multi-head self-attention of the adm family, in upstream's two head orders, and the
classifier's attention pooling (guided_diffusion/unet.py AttentionPool2d, from CLIP).

qkv is one 1-d conv of width 3C. Its output channels are read two ways:
  legacy order (improved-diffusion, guided-diffusion's default): the heads first, so
      head i owns channels [3d i, 3d (i + 1)), split there into its q, k, v;
  new order (``use_new_attention_order``): q, k, v first (each C wide), then the heads.
A plain three-way split of qkv is right only with one head in the legacy order.
"""
from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .blocks import Conv1x1d, norm


def attend(q, k, v):
    """softmax(q^T k / sqrt(d)) on [B*H, d, L] tensors (Vaswani et al. 2017, eq. 1)."""
    d = q.shape[1]
    w = paddle.matmul(q, k, transpose_x=True) * (float(d) ** -0.5)    # [BH, L, L]
    return paddle.matmul(v, F.softmax(w, axis=-1), transpose_y=True)   # [BH, d, L]


def qkv_attention(qkv, heads: int, new_order: bool):
    """[B, 3C, L] -> [B, C, L] in the given head order (see the module docstring)."""
    width, length = qkv.shape[1], qkv.shape[2]
    d = width // (3 * heads)
    if new_order:
        q, k, v = (part.reshape([-1, d, length]) for part in paddle.split(qkv, 3, axis=1))
    else:
        q, k, v = paddle.split(qkv.reshape([-1, 3 * d, length]), 3, axis=1)
    return attend(q, k, v).reshape([-1, heads * d, length])


def head_count(ch: int, num_heads: int, num_head_channels: int) -> int:
    return num_heads if num_head_channels == -1 else ch // num_head_channels


class AttentionBlock(nn.Layer):
    """x + proj_out(attention(qkv(norm(x)))) over the H*W positions; proj_out starts at 0."""

    def __init__(self, ch: int, heads: int, new_order: bool, groups: int = 32, eps: float = 1e-5):
        super().__init__()
        self.heads, self.new_order = heads, new_order
        self.norm = norm(ch, groups, eps)
        self.qkv = Conv1x1d(ch, 3 * ch)
        self.proj_out = Conv1x1d(ch, ch, zero=True)

    def forward(self, x):
        h = self.norm(x).flatten(2)                                      # [B, C, HW]
        h = self.proj_out(qkv_attention(self.qkv(h), self.heads, self.new_order))
        return h.reshape(paddle.shape(x)) + x   # fresh tensor first (models/layers.py)


class AttentionPool2d(nn.Layer):
    """Attention pooling: the mean position joins the H*W ones, each gets a learned position
    embedding, and the mean's attention output, projected, is the logits."""

    def __init__(self, spatial: int, ch: int, head_channels: int, out_ch: int):
        super().__init__()
        self.positional_embedding = self.create_parameter(
            [ch, spatial ** 2 + 1], default_initializer=nn.initializer.Normal(std=ch ** -0.5))
        self.qkv_proj = Conv1x1d(ch, 3 * ch)
        self.c_proj = Conv1x1d(ch, out_ch)
        self.heads = ch // head_channels

    def forward(self, x):
        x = x.flatten(2)                                                 # [B, C, HW]
        x = paddle.concat([x.mean(axis=-1, keepdim=True), x], axis=-1)   # [B, C, HW + 1]
        x = x + self.positional_embedding.unsqueeze(0)
        x = self.c_proj(qkv_attention(self.qkv_proj(x), self.heads, new_order=True))
        return x[:, :, 0]
