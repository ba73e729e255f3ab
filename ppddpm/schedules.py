"""Beta schedules, computed in float64.

linear/quad/const/jsd/warmupXX/sigmoid follow Ho et al.'s `get_beta_schedule`;
cosine is Improved DDPM (Nichol & Dhariwal 2021), eq. 17, with betas capped at 0.999.
"""
from __future__ import annotations

import math

import numpy as np


def _linear(T, b0, b1):
    return np.linspace(b0, b1, T, dtype=np.float64)


def _quad(T, b0, b1):
    return np.linspace(b0 ** 0.5, b1 ** 0.5, T, dtype=np.float64) ** 2


def _const(T, b0, b1):
    return np.full(T, b1, dtype=np.float64)


def _jsd(T, b0, b1):
    # 1/T, 1/(T-1), ..., 1: the Sohl-Dickstein et al. schedule.
    return 1.0 / np.linspace(T, 1, T, dtype=np.float64)


def _warmup(frac):
    def schedule(T, b0, b1):
        betas = np.full(T, b1, dtype=np.float64)
        n = int(T * frac)
        betas[:n] = np.linspace(b0, b1, n, dtype=np.float64)
        return betas
    return schedule


def cosine_alpha_bar(t: np.ndarray, s: float = 0.008) -> np.ndarray:
    """Improved DDPM eq. 17: alpha_bar(t) = f(t)/f(0), f(t) = cos^2(((t/T)+s)/(1+s) * pi/2).

    ``t`` is the fraction t/T in [0, 1].
    """
    f = lambda u: np.cos((u + s) / (1.0 + s) * math.pi / 2) ** 2
    return f(np.asarray(t, dtype=np.float64)) / f(0.0)


def _cosine(T, b0, b1, max_beta=0.999):
    # beta_t = 1 - alpha_bar(t)/alpha_bar(t-1), clipped to max_beta (Improved DDPM, sec. 3.2).
    steps = np.arange(T + 1, dtype=np.float64) / T
    abar = cosine_alpha_bar(steps)
    return np.minimum(1.0 - abar[1:] / abar[:-1], max_beta)


def _sigmoid(T, b0, b1):
    x = np.linspace(-6.0, 6.0, T, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-x)) * (b1 - b0) + b0


SCHEDULES = {
    "linear": _linear,
    "quad": _quad,
    "const": _const,
    "jsd": _jsd,
    "warmup10": _warmup(0.1),
    "warmup50": _warmup(0.5),
    "cosine": _cosine,
    "sigmoid": _sigmoid,
}


def get_beta_schedule(name: str, num_steps: int = 1000, beta_start: float = 1e-4,
                      beta_end: float = 0.02) -> np.ndarray:
    """Return the float64 betas of schedule ``name`` for ``num_steps`` steps."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown beta schedule {name!r}; known schedules: {sorted(SCHEDULES)}")
    if int(num_steps) < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    betas = SCHEDULES[name](int(num_steps), float(beta_start), float(beta_end))
    if not (np.all(betas > 0) and np.all(betas <= 1)):
        raise ValueError(f"schedule {name!r} with beta_start={beta_start}, beta_end={beta_end} "
                         "gives betas outside (0, 1]")
    return betas
