"""guided-diffusion's noisy classifier (EncoderUNetModel; Dhariwal & Nichol 2021, sec. 4):
the UNet's down path and middle block, then a head over the features:

  adaptive     norm -> swish -> global mean -> 1x1 conv (zero-initialised)   out.{0,3}
  attention    norm -> swish -> attention pooling                            out.{0,2}
  spatial      every block's spatial mean, concatenated -> Linear 2048 -> ReLU -> Linear
  spatial_v2   ... -> Linear 2048 -> GroupNorm -> swish -> Linear

forward(x, t) -> logits [N, num_classes], t as the diffusion UNet takes it.
"""
from __future__ import annotations

import paddle
import paddle.nn as nn

from ...config import ConfigError
from ..layers import Swish, swish
from .attention import AttentionPool2d
from .blocks import Flatten, GroupNorm1d, Mean2d, ReLU, conv, linear, norm
from .unet import Encoder

HIDDEN = 2048   # the spatial heads' width (upstream's)


class ADMClassifier(Encoder):

    def __init__(self, cfg):
        if cfg.num_classes is None:
            raise ConfigError("model.num_classes must be set for arch 'adm_classifier' "
                              "(the number of logits)")
        if cfg.classifier_pool == "attention" and cfg.num_head_channels == -1:
            raise ConfigError("model.classifier_pool='attention' needs model.num_head_channels "
                              "(upstream uses 64)")
        super().__init__(cfg)
        self.pool, self.num_classes = cfg.classifier_pool, cfg.num_classes
        ch, k = self.out_ch, cfg.num_classes
        if self.pool == "adaptive":
            self.out = nn.Sequential(norm(ch, self.groups, self.eps), Swish(), Mean2d(),
                                     conv(ch, k, kernel=1, zero=True), Flatten())
        elif self.pool == "attention":
            self.out = nn.Sequential(norm(ch, self.groups, self.eps), Swish(),
                                     AttentionPool2d(self.out_res, ch, cfg.num_head_channels, k))
        else:
            features = sum(self.skip_widths) + ch
            if self.pool == "spatial":
                self.out = nn.Sequential(linear(features, HIDDEN), ReLU(), linear(HIDDEN, k))
            else:
                self.out = nn.Sequential(linear(features, HIDDEN),
                                         GroupNorm1d(32, HIDDEN, epsilon=1e-5), Swish(),
                                         linear(HIDDEN, k))

    def forward(self, x, t):
        emb_act = swish(self.embed(t))
        spatial = self.pool.startswith("spatial")
        means, h = [], x
        for block in self.input_blocks:
            h = block(h, emb_act)
            if spatial:
                means.append(h.mean(axis=[2, 3]))
        h = self.middle_block(h, emb_act)
        if spatial:
            means.append(h.mean(axis=[2, 3]))
            return self.out(paddle.concat(means, axis=-1))
        return self.out(h)
