"""The optimizer, its checkpoint format, and mixed precision."""
from __future__ import annotations

import contextlib
import warnings
from typing import Optional

import paddle

AMP_CHOICES = ("off", "float16", "bfloat16")


class Adam(paddle.optimizer.Adam):
    """Paddle's Adam, updating all parameters with one merged kernel (``use_multi_tensor``)
    instead of one op each: the same update to float32 rounding, the same accumulators and
    state-dict keys. The merged kernel expects every trainable parameter to have a gradient
    (it fixes its list at the first step), so a step where some have none (an unused layer)
    runs the per-parameter ops, which skip those, on the same accumulators."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, use_multi_tensor=True, **kwargs)

    def step(self) -> None:
        self._use_multi_tensor = all(p.stop_gradient or p._grad_ivar() is not None
                                     for p in self._parameter_list)
        super().step()


def build_optimizer(model, lr_sched, grad_clip: float) -> paddle.optimizer.Adam:
    """Adam with gradient clipping by the global norm."""
    clip = paddle.nn.ClipGradByGlobalNorm(grad_clip) if grad_clip > 0 else None
    return Adam(learning_rate=lr_sched, parameters=model.parameters(), grad_clip=clip)


def optimizer_state_by_name(model, state: dict, to_structured: bool) -> dict:
    """Key the optimizer state by parameter path ("down.0.conv.weight") instead of Paddle's
    per-process unique names ("conv2d_3.w_0"), which change with construction order, so a
    checkpoint resumes in any process."""
    params = sorted(((n, p.name) for n, p in model.named_parameters()), key=lambda x: -len(x[1]))
    out = {}
    for key, value in state.items():
        new = key
        for path, unique in params:
            src, dst = (unique + "_", path + "::") if to_structured else (path + "::", unique + "_")
            if key.startswith(src):
                new = dst + key[len(src):]
                break
        out[new] = value
    return out


class MixedPrecision:
    """``--amp float16`` (with dynamic loss scaling) or ``bfloat16`` autocast; off by default.

    Paddle has no float16/bfloat16 conv or matmul kernels on the CPU: there ``auto_cast``
    keeps those ops in float32, so the run is float32 with the AMP code path exercised.
    A warning says so.
    """

    def __init__(self, mode: str = "off"):
        if mode not in AMP_CHOICES:
            raise ValueError(f"train.amp={mode!r}; choose one of {list(AMP_CHOICES)}")
        self.dtype: Optional[str] = None if mode == "off" else mode
        self.scaler = None
        if self.dtype is None:
            return
        if paddle.device.get_device().startswith("cpu"):
            warnings.warn(f"--amp {mode}: Paddle has no {mode} conv/matmul kernels on the CPU, "
                          "so autocast keeps them in float32 and this run trains in float32.",
                          stacklevel=2)
        if self.dtype == "float16":
            self.scaler = paddle.amp.GradScaler(init_loss_scaling=2.0 ** 16)

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return paddle.amp.auto_cast(dtype=self.dtype, level="O1")

    def backward(self, loss) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer) -> None:
        if self.scaler is not None:
            self.scaler.step(optimizer)  # skips the update when gradients overflowed
            self.scaler.update()
        else:
            optimizer.step()

    def state_dict(self) -> dict:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def set_state_dict(self, state: dict) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
