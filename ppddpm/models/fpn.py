"""FPN-style UNet (the original reproduction's CelebA-HQ 128 network, after bojone's
Keras-DDPM), written with the modern conventions of this package.

Structure (see shared/reference/ORIGINAL.md):
  temb: Embedding(T, ch) initialised with the DDPM sinusoids (half sin, half cos, in
        timestep order), swish, Linear(ch, 4ch)      [+ label_emb(y)]
  conv_in; per level `num_res_blocks` FPNBlocks, 2x2 average pooling between levels;
  skips are the inputs of every down block; one middle block; on the way up each block
  maps to its skip's channel count and the skip is ADDED after it, nearest 2x upsampling
  between levels; head: GroupNorm, conv3x3 (zero-initialised).
Differences from the original: element-wise dropout (config), optional attention at
`attn_resolutions` (the original has none: use []), learn_sigma and num_classes.
"""
from __future__ import annotations

import paddle.nn as nn
import paddle.nn.functional as F

from .layers import (AttnBlock, add_class_embedding, conv1x1, conv3x3, group_norm, linear,
                     sinusoidal_table, swish, upsample_nearest2x)
from .unet import check_common


class FPNBlock(nn.Layer):
    """h = swish(conv1(x)) + temb_proj(swish(temb)); h = swish(conv2(dropout(h)));
    out = GroupNorm(h + shortcut(x))   (post-norm; 1x1 shortcut when channels change)."""

    def __init__(self, in_ch, out_ch, temb_ch, dropout=0.0, groups=32, eps=1e-6):
        super().__init__()
        self.conv1 = conv3x3(in_ch, out_ch)
        self.temb_proj = linear(temb_ch, out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = conv3x3(out_ch, out_ch)
        self.shortcut = conv1x1(in_ch, out_ch) if in_ch != out_ch else None
        self.norm = group_norm(out_ch, groups, eps)

    def forward(self, x, temb_act):
        """temb_act = swish(temb), computed once by the network (see layers.ResBlock)."""
        h = swish(self.conv1(x)) + self.temb_proj(temb_act).unsqueeze([2, 3])
        h = swish(self.conv2(self.dropout(h)))
        return self.norm(h + (self.shortcut(x) if self.shortcut is not None else x))


class FPN(nn.Layer):
    """forward(x [N,C,H,W] float32, t [N] int64, y [N] int64 or None) -> [N, C_out(x2), H, W]."""

    def __init__(self, cfg):
        super().__init__()
        check_common(cfg, "arch 'fpn'")
        ch, mult, nres = cfg.ch, list(cfg.ch_mult), cfg.num_res_blocks
        groups, eps = getattr(cfg, "norm_groups", 32), getattr(cfg, "norm_eps", 1e-6)
        self.num_steps, self.num_classes = cfg.num_steps, cfg.num_classes
        temb_ch = 4 * ch
        table = sinusoidal_table(cfg.num_steps, ch, getattr(cfg, "time_freq_shift", 1.0))
        self.time_table = nn.Embedding(cfg.num_steps, ch, weight_attr=nn.initializer.Assign(table))
        self.time_dense = linear(ch, temb_ch)
        if cfg.num_classes is not None:   # id num_classes = "no label"
            self.label_emb = nn.Embedding(cfg.num_classes + 1, temb_ch)

        attn_res = set(cfg.attn_resolutions or [])
        self.conv_in = conv3x3(cfg.in_channels, ch)
        res_now, cur, skips = cfg.resolution, ch, []
        self.down, self.down_attn = nn.LayerList(), nn.LayerDict()
        for i, m in enumerate(mult):
            for j in range(nres):
                skips.append((cur, res_now))      # the input of this block
                self.down.append(FPNBlock(cur, ch * m, temb_ch, cfg.dropout, groups, eps))
                cur = ch * m
                if res_now in attn_res:
                    self.down_attn[str(len(self.down) - 1)] = AttnBlock(cur, groups, eps)
            if i != len(mult) - 1:
                res_now //= 2
        self.pool_after = {nres * (i + 1) - 1 for i in range(len(mult) - 1)}
        self.mid = FPNBlock(cur, cur, temb_ch, cfg.dropout, groups, eps)
        self.up, self.up_attn = nn.LayerList(), nn.LayerDict()
        self.upsample_after = set()
        for i in reversed(range(len(mult))):
            for j in range(nres):
                skip_ch, res_now = skips.pop()
                self.up.append(FPNBlock(cur, skip_ch, temb_ch, cfg.dropout, groups, eps))
                cur = skip_ch
                if res_now in attn_res:
                    self.up_attn[str(len(self.up) - 1)] = AttnBlock(cur, groups, eps)
            if i != 0:
                self.upsample_after.add(len(self.up) - 1)
        self.norm_out = group_norm(cur, groups, eps)
        out_ch = cfg.out_channels * (2 if cfg.learn_sigma else 1)
        self.conv_out = conv3x3(cur, out_ch, zero=True)

    def embed(self, t, y=None):
        temb = self.time_dense(swish(self.time_table(t)))
        return add_class_embedding(temb, t, y, getattr(self, "label_emb", None), self.num_classes)

    def forward(self, x, t, y=None):
        temb = swish(self.embed(t, y))
        h = self.conv_in(x)
        hs = []
        for k, block in enumerate(self.down):
            hs.append(h)
            h = block(h, temb)
            if str(k) in self.down_attn:
                h = self.down_attn[str(k)](h)
            if k in self.pool_after:
                h = F.avg_pool2d(h, 2)
        h = self.mid(h, temb)
        for k, block in enumerate(self.up):
            h = block(h, temb)
            if str(k) in self.up_attn:
                h = self.up_attn[str(k)](h)
            h = h + hs.pop()
            if k in self.upsample_after:
                h = upsample_nearest2x(h)
        return self.conv_out(self.norm_out(h))
