"""Layers shared by the official DDPM UNet and the FPN-style UNet.

Everything here exports with ``paddle.jit.save`` and runs under the Paddle
Inference predictor with oneDNN: upsampling is expand + reshape (not
``F.interpolate``) and dropout is element-wise (not ``Dropout2D``). In the dynamic
graph the convolutions run on oneDNN too (``conv.Conv2d``).
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .conv import Conv2d
from .matmul import Linear, batched_matmul
from .norm import GroupNorm

__all__ = [
    "timestep_embedding", "sinusoidal_table", "swish", "Swish", "group_norm", "conv3x3",
    "conv1x1", "linear", "ResBlock", "AttnBlock", "Downsample", "Upsample", "upsample_nearest2x",
    "sdpa_available",
]

_XAVIER = nn.initializer.XavierUniform()
_ZERO = nn.initializer.Constant(0.0)


def _frequencies(half: int, freq_shift: float) -> np.ndarray:
    # exp(-log(10000) * i / (half - shift)), i = 0..half-1, computed in float32 like
    # the official DDPM code (shift 1) and diffusers' Timesteps(downscale_freq_shift).
    if half - freq_shift <= 0:
        raise ValueError(f"embedding dim {2 * half} too small for freq_shift {freq_shift}")
    expo = -math.log(10000.0) * np.arange(half, dtype=np.float32) / np.float32(half - freq_shift)
    return np.exp(expo.astype(np.float32)).astype(np.float32)


def timestep_embedding(t: paddle.Tensor, dim: int, freq_shift: float = 1.0) -> paddle.Tensor:
    """Transformer-style embedding of integer timesteps, [N] -> [N, dim].

    Official DDPM (Ho et al. 2020, diffusion_tf/nn.py get_timestep_embedding):
    first half sin(t * f_i), second half cos(t * f_i), f_i = 10000^(-i/(half-1));
    odd ``dim`` is zero-padded.
    """
    half = dim // 2
    freqs = paddle.to_tensor(_frequencies(half, freq_shift))
    args = t.astype("float32").unsqueeze(1) * freqs.unsqueeze(0)
    # cos(a) = 1 - 2 sin^2(a/2) (exact identity, error ~1e-7 in float32): Paddle 3.3's
    # inference inplace_pass computes sin in place and then feeds the result to a cos of
    # the same tensor, so sin(a) and cos(a) side by side give wrong values once exported.
    half_sin = paddle.sin(args * 0.5)
    emb = paddle.concat([paddle.sin(args), 1.0 - 2.0 * half_sin * half_sin], axis=1)
    if dim % 2 == 1:
        emb = paddle.concat([emb, paddle.zeros_like(emb[:, :1])], axis=1)
    return emb


def sinusoidal_table(num_steps: int, dim: int, freq_shift: float = 1.0) -> np.ndarray:
    """The embedding of t = 0..num_steps-1 as a float32 table [num_steps, dim]."""
    half = dim // 2
    args = np.arange(num_steps, dtype=np.float32)[:, None] * _frequencies(half, freq_shift)[None]
    table = np.concatenate([np.sin(args), np.cos(args)], axis=1)
    if dim % 2 == 1:
        table = np.concatenate([table, np.zeros((num_steps, 1), np.float32)], axis=1)
    return table.astype(np.float32)


def swish(x):
    """swish(x) = x * sigmoid(x) (Ramachandran et al. 2017), the DDPM nonlinearity.

    Two spellings of the same function, each where its kernel is faster: ``F.silu`` in the
    dynamic graph (forward + backward of [8,256,32,32]: 14 ms against 23 ms), ``F.swish``
    in exported programs, which the predictor runs on oneDNN (about 10% less CPU time per
    UNet sampling step)."""
    return F.silu(x) if paddle.in_dynamic_mode() else F.swish(x)


class Swish(nn.Layer):
    """Layer form of :func:`swish`."""

    def forward(self, x):
        return swish(x)


def group_norm(ch: int, groups: int = 32, eps: float = 1e-6) -> nn.GroupNorm:
    """GroupNorm(32) as in the official code (tf.contrib group_norm, epsilon 1e-6); its
    training pass on the CPU runs on batch-norm kernels (norm.py)."""
    if ch % groups:
        raise ValueError(f"GroupNorm({groups}) needs channels divisible by {groups}, got {ch}")
    return GroupNorm(groups, ch, epsilon=eps)


def conv3x3(cin: int, cout: int, stride: int = 1, padding=1, zero: bool = False) -> Conv2d:
    """3x3 conv, Xavier-uniform weights (the official default_init), zero bias;
    ``zero=True`` zero-initialises the weight too (the official init_scale=0)."""
    return Conv2d(cin, cout, 3, stride=stride, padding=padding,
                  weight_attr=_ZERO if zero else _XAVIER, bias_attr=_ZERO)


def conv1x1(cin: int, cout: int) -> Conv2d:
    return Conv2d(cin, cout, 1, weight_attr=_XAVIER, bias_attr=_ZERO)


def linear(cin: int, cout: int, zero: bool = False) -> Linear:
    return Linear(cin, cout, weight_attr=_ZERO if zero else _XAVIER, bias_attr=_ZERO)


class ResBlock(nn.Layer):
    """Official DDPM residual block (diffusion_tf/models/unet.py resnet_block):

    h = conv1(swish(norm1(x))) + temb_proj(swish(temb))
    h = conv2(dropout(swish(norm2(h))))          conv2 zero-initialised
    out = shortcut(x) + h                         1x1 shortcut when channels change

    ``scale_shift`` (AdaGN, Improved DDPM / ADM's use_scale_shift_norm, diffusers'
    resnet_time_scale_shift "scale_shift"): temb_proj gives 2 out_ch values (scale, shift)
    and h = conv2(dropout(swish(norm2(conv1(...)) * (1 + scale) + shift))).
    """

    def __init__(self, in_ch: int, out_ch: int, temb_ch: int, dropout: float = 0.0,
                 groups: int = 32, eps: float = 1e-6, scale_shift: bool = False):
        super().__init__()
        self.scale_shift = bool(scale_shift)
        self.norm1 = group_norm(in_ch, groups, eps)
        self.conv1 = conv3x3(in_ch, out_ch)
        self.temb_proj = linear(temb_ch, out_ch * (2 if self.scale_shift else 1))
        self.norm2 = group_norm(out_ch, groups, eps)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = conv3x3(out_ch, out_ch, zero=True)
        self.shortcut = conv1x1(in_ch, out_ch) if in_ch != out_ch else None

    def forward(self, x, temb_act):
        """temb_act = swish(temb), computed once by the network: exported, several
        swish(temb) of one tensor are run in place by Paddle 3.3's inplace_pass."""
        h = self.conv1(swish(self.norm1(x)))
        if self.scale_shift:
            scale, shift = paddle.chunk(self.temb_proj(temb_act).unsqueeze([2, 3]), 2, axis=1)
            h = self.norm2(h) * (1.0 + scale) + shift
        else:
            h = self.norm2(h + self.temb_proj(temb_act).unsqueeze([2, 3]))
        h = self.conv2(self.dropout(swish(h)))
        # fresh tensor first, defensively: x is also a UNet skip, and Paddle 3.3's inference
        # inplace_pass has been seen to overwrite tensors still in use (timestep_embedding).
        return h + (self.shortcut(x) if self.shortcut is not None else x)


_SDPA_OK: Optional[bool] = None


def sdpa_available() -> bool:
    """Whether paddle's fused scaled_dot_product_attention runs on the current device."""
    global _SDPA_OK
    if _SDPA_OK is None:
        try:
            q = paddle.ones([1, 4, 1, 8], dtype="float32")
            out = F.scaled_dot_product_attention(q, q, q, training=False)
            _SDPA_OK = bool(np.allclose(out.numpy(), 1.0))
        except Exception:  # no kernel for this device / build
            _SDPA_OK = False
    return _SDPA_OK


class AttnBlock(nn.Layer):
    """Self-attention over the H*W positions (official attn_block, single head):

    q, k, v = Linear(norm(x));  h = softmax(q k^T / sqrt(C)) v;  out = x + proj_out(h)
    proj_out zero-initialised. ``use_sdpa`` None picks the fused kernel when available.
    ``head_channels`` > 0 splits q, k, v into C / head_channels heads of that width, each
    scaled by 1/sqrt(head_channels) (diffusers' attention_head_dim); ``norm=False`` drops
    the GroupNorm (diffusers' mid-block attention with scale-shift and no
    attn_norm_num_groups).
    """

    def __init__(self, ch: int, groups: int = 32, eps: float = 1e-6,
                 use_sdpa: Optional[bool] = None, head_channels: int = -1, norm: bool = True):
        super().__init__()
        self.ch = ch
        if head_channels > 0 and ch % head_channels:
            raise ValueError(f"{ch} channels do not split into heads of {head_channels}")
        self.heads = ch // head_channels if head_channels > 0 else 1
        self.norm = group_norm(ch, groups, eps) if norm else None
        self.qkv = linear(ch, 3 * ch)
        self.proj_out = linear(ch, ch, zero=True)
        self.use_sdpa = sdpa_available() if use_sdpa is None else use_sdpa

    def forward(self, x):
        h = (self.norm(x) if self.norm is not None else x).flatten(2).transpose([0, 2, 1])
        q, k, v = paddle.split(self.qkv(h), 3, axis=-1)               # [B, HW, C] each
        # a CPU training pass takes the oneDNN products and their gradients (models/matmul.py)
        fused = self.use_sdpa and not (self.training and x.place.is_cpu_place())
        if self.heads > 1:
            h = self._multi_head(q, k, v)
        elif fused:
            h = F.scaled_dot_product_attention(
                q.unsqueeze(2), k.unsqueeze(2), v.unsqueeze(2), training=False).squeeze(2)
        else:
            w = batched_matmul(q, k, transpose_y=True, training=self.training) * (float(self.ch) ** -0.5)
            h = batched_matmul(F.softmax(w, axis=-1), v, training=self.training)
        h = self.proj_out(h).transpose([0, 2, 1]).reshape(paddle.shape(x))  # H, W may be dynamic
        return h + x   # fresh tensor first (see ResBlock.forward)

    def _multi_head(self, q, k, v):
        d = self.ch // self.heads
        q, k, v = (a.reshape([0, 0, self.heads, d]) for a in (q, k, v))   # [B, HW, heads, d]
        if self.use_sdpa:
            h = F.scaled_dot_product_attention(q, k, v, training=False)
        else:
            q, k, v = (a.transpose([0, 2, 1, 3]) for a in (q, k, v))      # [B, heads, HW, d]
            w = paddle.matmul(q, k, transpose_y=True) * (float(d) ** -0.5)
            h = paddle.matmul(F.softmax(w, axis=-1), v).transpose([0, 2, 1, 3])
        return h.reshape([0, 0, self.ch])


class Downsample(nn.Layer):
    """Strided 3x3 conv. TF 'SAME' padding for stride 2 on even sizes pads 0 before and
    1 after (as diffusers' Downsample2D with padding=0 does with F.pad(x, (0,1,0,1)));
    ``padding=1`` pads one on every side (diffusers' default downsample_padding=1)."""

    def __init__(self, ch: int, padding: int = 0):
        super().__init__()
        if padding not in (0, 1):
            raise ValueError(f"downsample padding must be 0 or 1, got {padding}")
        self.conv = conv3x3(ch, ch, stride=2, padding=[0, 1, 0, 1] if padding == 0 else 1)

    def forward(self, x):
        return self.conv(x)


def upsample_nearest2x(x):
    """Nearest-neighbour 2x on NCHW: [N,C,H,W] -> [N,C,H,1,W,1] -> expand -> [N,C,2H,2W].
    Exports to the oneDNN predictor (F.interpolate nearest does not, in Paddle 3.x)
    and is faster than repeat_interleave both ways (its backward is one reduction)."""
    n, c, h, w = x.shape
    tiled = x.unsqueeze([3, 5]).expand([n, c, h, 2, w, 2])
    return tiled.reshape([n, c, 2 * h, 2 * w])


class Upsample(nn.Layer):
    """Nearest 2x, then conv3x3 (official upsample with_conv=True)."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = conv3x3(ch, ch)

    def forward(self, x):
        return self.conv(upsample_nearest2x(x))


def add_class_embedding(temb, t, y, label_emb, num_classes):
    """temb + label_emb(y) for conditional models; ``y=None`` is the "no label" id
    ``num_classes`` (the unconditional branch of classifier-free guidance)."""
    if num_classes is None:
        if y is not None:
            raise ValueError("class labels y were given to a model built without num_classes")
        return temb
    if y is None:
        y = paddle.full_like(t, num_classes, dtype="int64")
    return temb + label_emb(y)
