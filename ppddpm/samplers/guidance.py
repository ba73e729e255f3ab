"""Class labels and classifier-free guidance as a model wrapper (Ho & Salimans 2022).

A conditional network is trained with its label replaced by the "no label" id
``num_classes`` with probability p_uncond, so one network gives both eps(x, y) and
eps(x, null). Guidance then samples with

    eps_guided = (1 + w) eps(x, y) - w eps(x, null)            (Ho & Salimans, eq. 6)

``Guided`` computes it with ONE call of the wrapped network on the doubled batch
[x, x] with labels [y, null]. For a network that also outputs a variance (learned /
learned_range, 2C channels) only the first C channels (the mean part) are guided and the
variance channels are the conditional ones, as GLIDE does. The guided output is linear in
the network's output, so for x0- or x_{t-1}-predicting networks it is the same guidance.

Samplers never see labels: ``with_labels`` binds a batch's labels (and guidance) into a
callable ``model(x, t)`` before the sampling loop, which works with the dynamic graph and
with every engine that takes ``engine(x, t, y)``.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import paddle


def null_label_of(model) -> Optional[int]:
    """The "no label" id of a conditional model (its ``num_classes``), or None."""
    n = getattr(model, "num_classes", None)
    return None if n is None else int(n)


def _labels_tensor(y, batch: int) -> paddle.Tensor:
    y = y if isinstance(y, paddle.Tensor) else paddle.to_tensor(np.asarray(y, dtype=np.int64))
    y = y.astype("int64").reshape([-1])
    if y.shape[0] != batch:
        raise ValueError(f"{y.shape[0]} labels for a batch of {batch}")
    return y


class Guided:
    """``Guided(model, scale, null_label)(x, t, y)`` -> the guided network output.

    ``model(x, t, y)`` is the conditional network (or an engine). ``scale`` is w of the
    formula above: 0 returns the conditional output exactly (with one plain call).
    """

    def __init__(self, model, scale: float, null_label: int):
        self.model = model
        self.scale = float(scale)
        self.null_label = int(null_label)
        self.data_range = getattr(model, "data_range", (-1.0, 1.0))
        self.num_classes = getattr(model, "num_classes", None)

    def __call__(self, x, t, y):
        n, C = x.shape[0], x.shape[1]
        y = _labels_tensor(y, n)
        if self.scale == 0:
            return self.model(x, t, y)
        null = paddle.full([n], self.null_label, dtype="int64")
        out = self.model(paddle.concat([x, x]), paddle.concat([t, t]), paddle.concat([y, null]))
        cond, uncond = out[:n], out[n:]
        w = self.scale
        guided = (1.0 + w) * cond[:, :C] - w * uncond[:, :C]
        if out.shape[1] == C:
            return guided
        return paddle.concat([guided, cond[:, C:]], axis=1)   # the conditional variance


class WithLabels:
    """``model`` with a batch's labels bound: ``bound(x, t)`` = ``model(x, t, y)``, guided
    when ``scale`` != 0. Carries the model's ``data_range``."""

    def __init__(self, model, y, scale: float = 0.0):
        null = null_label_of(model)
        if null is None:
            raise ValueError("class labels were given to a model built without num_classes "
                             "(an unconditional model)")
        self.y = y
        self.call = Guided(model, scale, null) if scale else model
        self.data_range = getattr(model, "data_range", (-1.0, 1.0))
        self.num_classes = null

    def __call__(self, x, t, **kwargs):
        return self.call(x, t, y=_labels_tensor(self.y, x.shape[0]), **kwargs)


def with_labels(model, y=None, guidance_scale: float = 0.0):
    """``model`` itself without labels, else ``WithLabels(model, y, guidance_scale)``.

    Guidance needs labels: a scale other than 0 without ``y`` raises ValueError.
    """
    if y is None:
        if guidance_scale:
            raise ValueError("guidance_scale needs class labels y (a conditional model and "
                             "the classes to sample)")
        return model
    return WithLabels(model, y, guidance_scale)
