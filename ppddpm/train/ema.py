"""Exponential moving average of the weights (the paper samples from it; decay 0.9999)."""
from __future__ import annotations

import copy
from typing import List, Optional

import paddle


def flat_parameters(model: paddle.nn.Layer) -> paddle.Tensor:
    """Every parameter of ``model``, flattened and concatenated in ``parameters()`` order (a copy)."""
    return paddle.concat([p.detach().reshape([-1]) for p in model.parameters()])


class EMA:
    """Keeps ``shadow = decay * shadow + (1 - decay) * weights`` after every update.

    ``flat=True`` (small models): the shadow is held as one flat tensor between updates, so an
    update is three element-wise ops over all weights instead of three per parameter; the EMA
    network's own parameters are written from it when ``model`` or ``state_dict`` is read
    (the same float32 values: the arithmetic per element is unchanged). It holds a second
    copy of the weights, so large models keep the per-parameter update (``flat=False``),
    whose op count is small beside their step."""

    def __init__(self, model: paddle.nn.Layer, decay: float, flat: bool = True):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay, self.flat = float(decay), bool(flat)
        self._model = copy.deepcopy(model)
        self._model.eval()
        for p in self._model.parameters():
            p.stop_gradient = True
        self._live = model
        self._flat: Optional[paddle.Tensor] = None   # the shadow, when newer than the network

    @property
    def model(self) -> paddle.nn.Layer:
        """The EMA network, up to date (a caller may change its weights, e.g. to load them)."""
        if self._flat is not None:
            with paddle.no_grad():
                params: List[paddle.Tensor] = list(self._model.parameters())
                pieces = paddle.split(self._flat, [int(p.size) for p in params])
                for p, piece in zip(params, pieces):
                    p.set_value(piece.reshape(p.shape))
            self._flat = None
        return self._model

    @paddle.no_grad()
    def update(self, live_flat: Optional[paddle.Tensor] = None) -> None:
        """One EMA step towards the live weights (``live_flat``: ``flat_parameters`` of them,
        when the caller already has it)."""
        d = self.decay
        if not self.flat:
            for shadow, live in zip(self._model.parameters(), self._live.parameters()):
                shadow.set_value(shadow * d + live.detach() * (1.0 - d))
            return
        if self._flat is None:
            self._flat = flat_parameters(self._model)
        live = flat_parameters(self._live) if live_flat is None else live_flat
        self._flat = self._flat * d + live * (1.0 - d)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def set_state_dict(self, state: dict) -> None:
        self.model.set_state_dict(state)
