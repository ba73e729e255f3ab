"""What a training run tells a person reading its log: plain progress lines when no bar is
drawn (stderr redirected to a file), and a note when warm-up outlasts the run."""
from __future__ import annotations

import sys
import time
from typing import Callable, Optional

from .lr import lr_factor

LINE_SECONDS = 30.0   # a plain progress line at most this often (and one at the last iteration)


def duration(seconds: float) -> str:
    """``1h02m``, ``3m05s`` or ``42s``."""
    s = int(round(max(seconds, 0.0)))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class ProgressLines:
    """``train: iteration 120/400 (30%), loss 0.0412, 3.05 it/s, ETA 1m32s`` every
    ``interval`` seconds and at the last iteration; the speed counts this process's
    iterations only (a resumed run starts its clock at the resumed iteration)."""

    def __init__(self, total: int, first: int, interval: float = LINE_SECONDS, stream=None,
                 clock: Callable[[], float] = time.monotonic):
        self.total, self.first, self.interval = total, first, interval
        self.stream, self.clock = stream, clock
        self.start = self.last = clock()

    def update(self, iteration: int, loss: float) -> Optional[str]:
        """Print and return the line when one is due, else None."""
        now = self.clock()
        if now - self.last < self.interval and iteration < self.total:
            return None
        self.last = now
        done = iteration - self.first
        rate = done / max(now - self.start, 1e-9)
        eta = (self.total - iteration) / rate if rate > 0 else 0.0
        line = (f"train: iteration {iteration}/{self.total} ({100 * iteration // max(self.total, 1)}%), "
                f"loss {loss:.4g}, {rate:.3g} it/s, ETA {duration(eta)}")
        print(line, file=self.stream or sys.stderr, flush=True)
        return line


def warmup_note(lr: float, warmup_steps: int, training_iters: int, first: int = 0) -> Optional[str]:
    """One line when warm-up is longer than the run: the rate the run will actually reach."""
    if training_iters >= warmup_steps or training_iters <= first:
        return None
    top = lr * lr_factor(training_iters - 1, warmup_steps, training_iters)
    return (f"note: train.warmup_steps is {warmup_steps} but training_iters is {training_iters}, "
            f"so the learning rate only ramps up to {top:.2g} (of --lr {lr:g}); for a short "
            f"trial lower --warmup_steps (e.g. --warmup_steps {max(training_iters // 10, 0)})")
