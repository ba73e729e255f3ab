"""The official DDPM UNet (Ho et al. 2020, diffusion_tf/models/unet.py), from a ModelConfig.

Layout (names follow the well-known PyTorch port of the official code):
  temb: sinusoidal(ch) -> dense0 (ch->4ch) -> swish -> dense1 (4ch->4ch)  [+ label_emb(y)]
  conv_in; down.{i}.block.{j}[, down.{i}.attn.{j}], down.{i}.downsample
  mid.block_1, mid.attn_1, mid.block_2
  up.{i}.block.{j} (num_res_blocks + 1, input concatenated with a skip)[, up.{i}.attn.{j}],
  up.{i}.upsample; norm_out -> swish -> conv_out (zero-initialised)
"""
from __future__ import annotations

import paddle
import paddle.nn as nn

from ..config import ConfigError
from .layers import (AttnBlock, Downsample, ResBlock, Swish, Upsample, add_class_embedding, conv3x3,
                     group_norm, linear, swish, timestep_embedding)


def check_common(cfg, name: str) -> None:
    """Raise ConfigError for model settings no network can be built from."""
    if not cfg.ch_mult or any(m < 1 for m in cfg.ch_mult):
        raise ConfigError(f"model.ch_mult={cfg.ch_mult!r} must be a non-empty list of "
                          f"positive integers for {name}")
    down = 2 ** (len(cfg.ch_mult) - 1)
    if cfg.resolution % down:
        raise ConfigError(f"model.resolution={cfg.resolution} must be divisible by {down} "
                          f"(2^(len(ch_mult)-1)) for {name}")
    groups = getattr(cfg, "norm_groups", 32)
    bad = [cfg.ch * m for m in cfg.ch_mult if (cfg.ch * m) % groups]
    if bad:
        raise ConfigError(f"channel counts {bad} are not divisible by "
                          f"model.norm_groups={groups}; change model.ch or model.norm_groups")
    if cfg.num_classes is not None and cfg.num_classes < 1:
        raise ConfigError(f"model.num_classes={cfg.num_classes} must be >= 1 or null")


class _Level(nn.Layer):
    """One resolution level: res blocks, optional attention after each, resampler."""

    def __init__(self, blocks, attns, resample):
        super().__init__()
        self.block = nn.LayerList(blocks)
        self.attn = nn.LayerList(attns)
        self._resample = None
        if resample is not None:   # registered as "downsample" or "upsample"
            setattr(self, resample[0], resample[1])
            self._resample = resample[0]

    @property
    def resample(self):
        return getattr(self, self._resample) if self._resample else None


class UNet(nn.Layer):
    """forward(x [N,C,H,W] float32, t [N] int64, y [N] int64 or None) -> [N, C_out(x2), H, W]."""

    def __init__(self, cfg):
        super().__init__()
        check_common(cfg, "arch 'unet'")
        ch, mult, nres = cfg.ch, list(cfg.ch_mult), cfg.num_res_blocks
        groups, eps = getattr(cfg, "norm_groups", 32), getattr(cfg, "norm_eps", 1e-6)
        scale_shift = bool(getattr(cfg, "use_scale_shift_norm", False))
        head_ch = int(getattr(cfg, "num_head_channels", -1))
        pad = int(getattr(cfg, "downsample_padding", 0))
        self.ch = ch
        self.freq_shift = float(getattr(cfg, "time_freq_shift", 1.0))
        self.num_classes = cfg.num_classes
        self.out_ch = cfg.out_channels * (2 if cfg.learn_sigma else 1)
        temb_ch = 4 * ch
        self.temb = nn.Sequential(linear(ch, temb_ch), Swish(), linear(temb_ch, temb_ch))
        if cfg.num_classes is not None:   # id num_classes = "no label" (classifier-free guidance)
            self.label_emb = nn.Embedding(cfg.num_classes + 1, temb_ch)

        def res(cin, cout):
            return ResBlock(cin, cout, temb_ch, cfg.dropout, groups, eps, scale_shift)

        def attn(c, norm=True):
            if head_ch > 0 and c % head_ch:
                raise ConfigError(f"model.num_head_channels={head_ch} does not divide the {c} "
                                  "channels of an attention level; use a divisor, or -1 for "
                                  "one head")
            return AttnBlock(c, groups, eps, head_channels=head_ch, norm=norm)

        self.conv_in = conv3x3(cfg.in_channels, ch)
        attn_res = set(cfg.attn_resolutions or [])
        res_now, cur, skips = cfg.resolution, ch, [ch]
        self.down = nn.LayerList()
        for i, m in enumerate(mult):
            blocks, attns = [], []
            for _ in range(nres):
                blocks.append(res(cur, ch * m))
                cur = ch * m
                if res_now in attn_res:
                    attns.append(attn(cur))
                skips.append(cur)
            last = i == len(mult) - 1
            self.down.append(_Level(blocks, attns, None if last else ("downsample", Downsample(cur, pad))))
            if not last:
                skips.append(cur)
                res_now //= 2
        self.mid = nn.Layer()
        self.mid.block_1, self.mid.attn_1, self.mid.block_2 = \
            res(cur, cur), attn(cur, norm=bool(getattr(cfg, "mid_attn_norm", True))), res(cur, cur)

        ups = []
        for i in reversed(range(len(mult))):
            blocks, attns = [], []
            for _ in range(nres + 1):
                blocks.append(res(cur + skips.pop(), ch * mult[i]))
                cur = ch * mult[i]
                if res_now in attn_res:
                    attns.append(attn(cur))
            ups.insert(0, _Level(blocks, attns, None if i == 0 else ("upsample", Upsample(cur))))
            if i != 0:
                res_now *= 2
        self.up = nn.LayerList(ups)
        self.norm_out = group_norm(cur, groups, eps)
        self.conv_out = conv3x3(cur, self.out_ch, zero=True)

    def embed(self, t, y=None):
        temb = self.temb(timestep_embedding(t, self.ch, self.freq_shift))
        return add_class_embedding(temb, t, y, getattr(self, "label_emb", None), self.num_classes)

    def forward(self, x, t, y=None):
        temb = swish(self.embed(t, y))   # every block uses swish(temb)
        hs = [self.conv_in(x)]
        for level in self.down:
            for j, block in enumerate(level.block):
                h = block(hs[-1], temb)
                if len(level.attn):
                    h = level.attn[j](h)
                hs.append(h)
            if level.resample is not None:
                hs.append(level.resample(hs[-1]))
        h = self.mid.block_1(hs[-1], temb)
        h = self.mid.block_2(self.mid.attn_1(h), temb)
        for level in reversed(self.up):
            for j, block in enumerate(level.block):
                h = block(paddle.concat([h, hs.pop()], axis=1), temb)
                if len(level.attn):
                    h = level.attn[j](h)
            if level.resample is not None:
                h = level.resample(h)
        return self.conv_out(swish(self.norm_out(h)))
