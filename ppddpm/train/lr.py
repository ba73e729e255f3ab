"""Learning-rate schedule: linear warm-up, then constant or linear decay to zero."""
from __future__ import annotations

import paddle


def lr_factor(step: int, warmup_steps: int, total_steps: int, decay: str = "constant") -> float:
    """Multiplier of the base rate for update number ``step`` (0-based).

    Warm-up ramps over the first ``warmup_steps`` updates, (step + 1) / warmup_steps, so the
    first update already moves the weights. With ``decay="linear"`` the rate then falls
    linearly, (total - step) / (total - warmup), reaching 0 when training ends.
    """
    factor = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    if decay == "linear" and step >= warmup_steps and total_steps > warmup_steps:
        factor *= max(0.0, (total_steps - step) / (total_steps - warmup_steps))
    return factor


def build_lr_scheduler(base_lr: float, warmup_steps: int, total_steps: int,
                       decay: str = "constant") -> paddle.optimizer.lr.LambdaDecay:
    return paddle.optimizer.lr.LambdaDecay(
        base_lr, lambda step: lr_factor(step, warmup_steps, total_steps, decay))
