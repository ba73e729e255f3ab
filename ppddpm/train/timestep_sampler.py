"""Timestep samplers for training: uniform, and Improved DDPM's loss-aware importance sampler.

Improved DDPM (Nichol & Dhariwal 2021), sec. 3.3, eq. 18: the variational bound
L_vlb = E_{t ~ p_t}[L_t / p_t] with p_t proportional to sqrt(E[L_t^2]), estimated from the
last 10 values of each L_t; until every t has 10 values, t is drawn uniformly. As in their
code, p is mixed with a little of the uniform distribution (weight 0.001) so that no
timestep is ever starved. The trainer multiplies each example's loss by its importance
weight 1 / (T p_t), which keeps the expected loss equal to the uniform-t loss.

Contract with the trainer (ppddpm.train.trainer):
  * ``sample(u)``: u is a float64 array of uniforms in [0, 1), one per example, drawn from
    that example's own seeded stream (ppddpm.train.randomness); returns (t int64 tensor,
    weights float32 tensor or None). t = F^{-1}(u) for the sampler's current CDF F, so the
    draw is a pure function of (u, state).
  * ``update(t, terms)``: after each micro-batch's forward pass; ``terms["loss"]`` holds
    the per-example losses. The losses are only buffered.
  * ``flush()``: once per iteration, after the loss was found finite. Gathers the buffered
    (t, loss) pairs of every rank and applies them in global-batch order, so all ranks keep
    one history and the result does not depend on how the batch is split.
  * ``state_dict()`` / ``set_state_dict()``: the history, saved in training checkpoints so
    that a resumed run draws what the uninterrupted run would.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np
import paddle
import paddle.distributed as dist

from ..config import ConfigError
from ..runtime.dist import world

TIMESTEP_SAMPLERS = ("uniform", "loss_aware")


def _numpy(x) -> np.ndarray:
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):
        x = x.numpy()
    return np.asarray(x)


class UniformSampler:
    """t = floor(u T), no importance weights (the DDPM paper's choice)."""

    name = "uniform"

    def __init__(self, num_timesteps: int):
        if num_timesteps < 1:
            raise ValueError(f"num_timesteps must be >= 1, got {num_timesteps}")
        self.num_timesteps = int(num_timesteps)

    def probabilities(self) -> np.ndarray:
        return np.full(self.num_timesteps, 1.0 / self.num_timesteps)

    def sample(self, u) -> Tuple[paddle.Tensor, Optional[paddle.Tensor]]:
        u = np.asarray(u, dtype=np.float64)
        t = np.minimum((u * self.num_timesteps).astype(np.int64), self.num_timesteps - 1)
        return paddle.to_tensor(t), None

    def update(self, t, terms) -> None:
        pass

    def flush(self) -> None:
        pass

    def state_dict(self) -> dict:
        return {"name": self.name}

    def set_state_dict(self, state: dict) -> None:
        pass


class LossAwareSampler(UniformSampler):
    """Importance sampling of t by sqrt(E[L_t^2]) over a history of the last losses."""

    name = "loss_aware"

    def __init__(self, num_timesteps: int, history: int = 10, uniform_prob: float = 0.001):
        super().__init__(num_timesteps)
        self.history_size, self.uniform_prob = int(history), float(uniform_prob)
        self.history = np.zeros((self.num_timesteps, self.history_size), dtype=np.float64)
        self.count = np.zeros(self.num_timesteps, dtype=np.int64)
        self._pending: List[Tuple[np.ndarray, np.ndarray]] = []

    def warmed_up(self) -> bool:
        return bool((self.count == self.history_size).all())

    def probabilities(self) -> np.ndarray:
        """p_t: uniform until every t has a full history, then eq. 18's sqrt(E[L_t^2])."""
        if not self.warmed_up():
            return super().probabilities()
        p = np.sqrt(np.mean(self.history ** 2, axis=1))
        p /= p.sum()
        return p * (1.0 - self.uniform_prob) + self.uniform_prob / self.num_timesteps

    def sample(self, u):
        if not self.warmed_up():          # the same draws as the uniform sampler
            return super().sample(u)
        p = self.probabilities()
        cdf = np.cumsum(p)
        t = np.minimum(np.searchsorted(cdf, np.asarray(u, dtype=np.float64) * cdf[-1],
                                       side="right"), self.num_timesteps - 1).astype(np.int64)
        weights = 1.0 / (self.num_timesteps * p[t])
        return paddle.to_tensor(t), paddle.to_tensor(weights.astype(np.float32))

    def update(self, t, terms) -> None:
        losses = terms["loss"] if isinstance(terms, dict) else terms
        self._pending.append((_numpy(t).astype(np.int64).ravel(),
                              _numpy(losses.detach() if hasattr(losses, "detach") else losses)
                              .astype(np.float64).ravel()))

    def flush(self) -> None:
        """Apply this iteration's losses (from every rank, in global-batch order)."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        for t, loss in _gather_global_order(pending):
            self.record(t, loss)

    def record(self, t: np.ndarray, losses: np.ndarray) -> None:
        """Push each (t_i, loss_i), in order, into t_i's history (oldest value dropped)."""
        for ti, li in zip(np.asarray(t).ravel(), np.asarray(losses).ravel()):
            ti = int(ti)
            if self.count[ti] == self.history_size:
                self.history[ti, :-1] = self.history[ti, 1:]
                self.history[ti, -1] = li
            else:
                self.history[ti, self.count[ti]] = li
                self.count[ti] += 1

    def state_dict(self) -> dict:
        return {"name": self.name, "history": self.history.copy(), "count": self.count.copy()}

    def set_state_dict(self, state: dict) -> None:
        if not state or state.get("name") != self.name:
            return   # a checkpoint of a uniform run: start the history afresh
        history = _numpy(state["history"]).astype(np.float64)
        count = _numpy(state["count"]).astype(np.int64)
        if history.shape != self.history.shape or count.shape != self.count.shape:
            raise ConfigError(f"the checkpoint's loss-aware history has shape {list(history.shape)}, "
                              f"but this run has {self.num_timesteps} timesteps x "
                              f"{self.history_size} values; resume with the config it was trained with")
        self.history, self.count = history, count


def _gather_global_order(pending):
    """[(t, loss)] per micro-batch of this rank -> the same over all ranks, in the global
    batch's order (micro-batch a of rank r is examples a*B*W + r*B ...)."""
    size, _ = world()
    if size == 1:
        return pending
    local = np.stack([np.stack([t.astype(np.float64), loss]) for t, loss in pending])  # [A, 2, B]
    parts: list = []
    dist.all_gather(parts, paddle.to_tensor(local))
    per_rank = [p.numpy() for p in parts]
    return [(per_rank[r][a, 0].astype(np.int64), per_rank[r][a, 1])
            for a in range(len(pending)) for r in range(size)]


def build_timestep_sampler(name: str, num_timesteps: int) -> UniformSampler:
    if name == "uniform":
        return UniformSampler(num_timesteps)
    if name == "loss_aware":
        return LossAwareSampler(num_timesteps)
    raise ConfigError(f"train.timestep_sampler={name!r} is not known; choose one of "
                      f"{list(TIMESTEP_SAMPLERS)}")
