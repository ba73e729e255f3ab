"""Exponential moving average of the weights (the paper samples from it; decay 0.9999)."""
from __future__ import annotations

import copy

import paddle


class EMA:
    """Keeps ``shadow = decay * shadow + (1 - decay) * weights`` after every update."""

    def __init__(self, model: paddle.nn.Layer, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.model = copy.deepcopy(model)
        self.model.eval()
        for p in self.model.parameters():
            p.stop_gradient = True
        self._pairs = list(zip(self.model.parameters(), model.parameters()))

    @paddle.no_grad()
    def update(self, model: paddle.nn.Layer = None) -> None:
        d = self.decay
        for shadow, live in self._pairs:
            shadow.set_value(shadow * d + live.detach() * (1.0 - d))

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def set_state_dict(self, state: dict) -> None:
        self.model.set_state_dict(state)
