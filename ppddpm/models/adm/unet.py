"""improved-diffusion's and guided-diffusion's UNet (Nichol & Dhariwal 2021; Dhariwal &
Nichol 2021, "ADM"), from a ModelConfig, with upstream's parameter names:

  time_embed.{0,2}                   sinusoid(time_embed_ch) -> Linear -> swish -> Linear
  label_emb                          class-conditional: one row per class, plus "no label"
  input_blocks.{i}                   conv; per level num_res_blocks x (ResBlock[, attention]),
                                     then a resampler (conv / avg-pool / down ResBlock)
  middle_block                       ResBlock, attention, ResBlock
  output_blocks.{i}                  per level num_res_blocks + 1 x (ResBlock on [h, skip]
                                     [, attention]), the last one resampling up
  out.{0,2}                          norm -> swish -> conv (zero-initialised)

Widths are ch * ch_mult[i]; the timestep embedding is time_embed_ch (default ch) wide and
its MLP 4 * time_embed_ch, as upstream's num_channels, so the 512 model's channel_mult 0.5
is ch 128, ch_mult [1, 2, 2, 4, 4, 8, 8], time_embed_ch 256.
"""
from __future__ import annotations

import paddle
import paddle.nn as nn

from ..layers import Swish, add_class_embedding, swish
from .attention import AttentionBlock, head_count
from .blocks import (Downsample, ResBlock, TimestepSequential, Upsample, adm_timestep_embedding,
                     conv, linear, norm)


class Encoder(nn.Layer):
    """What the UNet and the classifier share: the timestep MLP, the down path and the
    middle block. Records each input block's width (``skip_widths``) for the up path."""

    def __init__(self, cfg):
        super().__init__()
        self.model_ch = cfg.time_embed_ch or cfg.ch
        self.time_scale = 1000.0 / cfg.num_steps if cfg.rescale_timesteps else 1.0
        self.num_steps = cfg.num_steps
        self.emb_ch = emb_ch = 4 * self.model_ch
        self.time_embed = nn.Sequential(linear(self.model_ch, emb_ch), Swish(),
                                        linear(emb_ch, emb_ch))
        self.groups, self.eps = cfg.norm_groups, cfg.norm_eps
        attn_res = set(cfg.attn_resolutions or [])
        ch = cfg.ch * cfg.ch_mult[0]
        blocks, widths, res = [TimestepSequential(conv(cfg.in_channels, ch))], [ch], cfg.resolution
        heads = lambda width: head_count(width, cfg.num_heads, cfg.num_head_channels)  # noqa: E731
        for level, mult in enumerate(cfg.ch_mult):
            for _ in range(cfg.num_res_blocks):
                layers = [self.res(cfg, ch, cfg.ch * mult)]
                ch = cfg.ch * mult
                if res in attn_res:
                    layers.append(self.attn(cfg, ch, heads(ch)))
                blocks.append(TimestepSequential(*layers))
                widths.append(ch)
            if level != len(cfg.ch_mult) - 1:
                blocks.append(TimestepSequential(
                    self.res(cfg, ch, ch, down=True) if cfg.resblock_updown
                    else Downsample(ch, use_conv=True)))
                widths.append(ch)
                res //= 2
        self.input_blocks = nn.LayerList(blocks)
        self.middle_block = TimestepSequential(
            self.res(cfg, ch, ch), self.attn(cfg, ch, heads(ch)), self.res(cfg, ch, ch))
        self.skip_widths, self.out_ch, self.out_res = widths, ch, res

    def res(self, cfg, cin, cout, up=False, down=False):
        return ResBlock(cin, self.emb_ch, cfg.dropout, cout, cfg.use_scale_shift_norm, up=up,
                        down=down, groups=self.groups, eps=self.eps)

    def attn(self, cfg, ch, heads):
        return AttentionBlock(ch, heads, cfg.use_new_attention_order, self.groups, self.eps)

    def embed(self, t):
        """The timestep MLP's output; t is an original index, rescaled when configured."""
        return self.time_embed(adm_timestep_embedding(t.astype("float32") * self.time_scale,
                                                      self.model_ch))


class ADMUNet(Encoder):
    """forward(x [N,C,H,W], t [N] int64, y [N] int64 or None) -> [N, C_out (x2 with
    learn_sigma), H, W]. y = None (or the id num_classes) is "no label"."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.num_classes = cfg.num_classes
        if cfg.num_classes is not None:
            self.label_emb = nn.Embedding(cfg.num_classes + 1, self.emb_ch)
        skips, ch, res = list(self.skip_widths), self.out_ch, self.out_res
        attn_res = set(cfg.attn_resolutions or [])
        up_heads = cfg.num_heads if cfg.num_heads_upsample == -1 else cfg.num_heads_upsample
        blocks = []
        for level in reversed(range(len(cfg.ch_mult))):
            for i in range(cfg.num_res_blocks + 1):
                layers = [self.res(cfg, ch + skips.pop(), cfg.ch * cfg.ch_mult[level])]
                ch = cfg.ch * cfg.ch_mult[level]
                if res in attn_res:
                    layers.append(self.attn(cfg, ch, head_count(ch, up_heads, cfg.num_head_channels)))
                if level and i == cfg.num_res_blocks:
                    layers.append(self.res(cfg, ch, ch, up=True) if cfg.resblock_updown
                                  else Upsample(ch, use_conv=True))
                    res *= 2
                blocks.append(TimestepSequential(*layers))
        self.output_blocks = nn.LayerList(blocks)
        out_ch = cfg.out_channels * (2 if cfg.learn_sigma else 1)
        self.out = nn.Sequential(norm(ch, self.groups, self.eps), Swish(),
                                 conv(ch, out_ch, zero=True))

    def forward(self, x, t, y=None):
        emb = add_class_embedding(self.embed(t), t, y, getattr(self, "label_emb", None),
                                  self.num_classes)
        emb_act = swish(emb)
        hs, h = [], x
        for block in self.input_blocks:
            h = block(h, emb_act)
            hs.append(h)
        h = self.middle_block(h, emb_act)
        for block in self.output_blocks:
            h = block(paddle.concat([h, hs.pop()], axis=1), emb_act)
        return self.out(h)
