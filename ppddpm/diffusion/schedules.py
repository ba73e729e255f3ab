"""Beta schedules, computed in float64.

linear_scaled is improved-diffusion's linear (Nichol & Dhariwal 2021): both ends scaled by 1000/T.
linear/quad/const/jsd/warmupXX/sigmoid follow Ho et al.'s `get_beta_schedule`;
cosine is Improved DDPM (Nichol & Dhariwal 2021), eq. 17, with betas capped at 0.999.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ..config import ConfigError, label
from ..config.names import BETA_SCHEDULES


def _linear(T, b0, b1):
    return np.linspace(b0, b1, T, dtype=np.float64)


def _linear_scaled(T, b0, b1):
    # improved-diffusion's "linear": beta_start and beta_end scaled by 1000/T, so that any T
    # ends near alpha-bar_T = 4e-5 as Ho et al.'s T = 1000 does. Below T = 20 (with beta_end
    # 0.02) the last betas would pass 1; they are capped at 0.999 as the cosine schedule's are.
    scale = 1000.0 / T
    return np.minimum(np.linspace(b0 * scale, b1 * scale, T, dtype=np.float64), 0.999)


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
    "linear_scaled": _linear_scaled,
    "quad": _quad,
    "const": _const,
    "jsd": _jsd,
    "warmup10": _warmup(0.1),
    "warmup50": _warmup(0.5),
    "cosine": _cosine,
    "sigmoid": _sigmoid,
}
assert tuple(SCHEDULES) == BETA_SCHEDULES, "a schedule name without its formula, or the reverse"


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


# Which of beta_start/beta_end each schedule reads. A schedule missing here is still checked
# through the betas it gives.
SCHEDULE_USES = {
    "linear": ("beta_start", "beta_end"), "linear_scaled": ("beta_start", "beta_end"),
    "quad": ("beta_start", "beta_end"),
    "warmup10": ("beta_start", "beta_end"), "warmup50": ("beta_start", "beta_end"),
    "sigmoid": ("beta_start", "beta_end"), "const": ("beta_end",), "jsd": (), "cosine": (),
}


def _fail_range(key: str, rule: str, value) -> None:
    raise ConfigError(f"{label(key)} must be {rule}, got {value!r}")


def check_schedule(d) -> np.ndarray:
    """A DiffusionConfig's schedule is usable: 0 < beta_start < beta_end < 1 where the schedule
    reads them, every beta in (0, 1), and alpha-bar_T invertible in float32. Returns the
    betas; one ConfigError line naming the flag and key otherwise."""
    if d.beta_schedule not in SCHEDULES:
        _fail_range("diffusion.beta_schedule", f"one of {sorted(SCHEDULES)}", d.beta_schedule)
    uses = SCHEDULE_USES.get(d.beta_schedule, ())
    for name in uses:
        if not 0.0 < getattr(d, name) < 1.0:
            _fail_range(f"diffusion.{name}", f"in (0, 1) for the {d.beta_schedule} schedule",
                  getattr(d, name))
    if len(uses) == 2 and not d.beta_start < d.beta_end:
        raise ConfigError(f"{label('diffusion.beta_start')} must be below {label('diffusion.beta_end')} "
                          f"for the {d.beta_schedule} schedule, got {d.beta_start!r} >= {d.beta_end!r}")
    betas = get_beta_schedule(d.beta_schedule, d.num_diffusion_steps, d.beta_start, d.beta_end)
    if not np.all((betas > 0) & (betas < 1)):
        # jsd ends at beta_T = 1: alpha-bar_T = 0 makes x0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar)
        # (Ho et al. eq. 4 solved for x0) divide by zero at the first sampling step.
        raise ConfigError(f"{label('diffusion.beta_schedule')}={d.beta_schedule!r} gives betas from "
                          f"{betas.min():g} to {betas.max():g}; every beta must lie in (0, 1) "
                          "(beta = 1 leaves no signal to recover); choose another schedule")
    abar_end = float(np.prod(1.0 - betas))
    if not (abar_end > 0 and np.isfinite(np.float32(1.0 / np.sqrt(abar_end)))):
        # x0 = x_t / sqrt(abar) - sqrt(1/abar - 1) eps (Ho et al. eq. 4 solved for x0), in float32
        raise ConfigError(f"{label('diffusion.beta_schedule')}={d.beta_schedule!r} with "
                          f"{label('diffusion.beta_end')}={d.beta_end!r} over {d.num_diffusion_steps} "
                          f"steps drives alpha-bar_T to {abar_end:.3g}, which leaves no signal: "
                          "1/sqrt(alpha-bar_T) overflows float32 and samples turn to NaN; lower "
                          "beta_end or num_diffusion_steps")
    return betas


# x_T must be noise: a chain whose alpha-bar_T is above this keeps sqrt(alpha-bar_T) of the
# image at t = T (Ho et al. eq. 4), so sampling from N(0, I) starts off the training data.
# Ho et al.'s T = 1000 linear schedule ends at 4e-5; T = 20 with the same betas at 0.82.
TERMINAL_ALPHA_BAR_LIMIT = 1e-2


def terminal_alpha_bar(betas: np.ndarray) -> float:
    return float(np.prod(1.0 - np.asarray(betas, dtype=np.float64)))


def short_chain_problem(d, betas: np.ndarray) -> Optional[str]:
    """Why samples from this schedule cannot look like the data, or None: alpha-bar_T above
    TERMINAL_ALPHA_BAR_LIMIT. The caller adds the fix (SHORT_CHAIN_FIX)."""
    abar_end = terminal_alpha_bar(betas)
    if abar_end <= TERMINAL_ALPHA_BAR_LIMIT:
        return None
    return (f"the {d.beta_schedule!r} schedule over {d.num_diffusion_steps} steps ends at "
            f"alpha-bar_T = {abar_end:.3g}, not near 0: x_T keeps {np.sqrt(abar_end):.0%} of the "
            "image, so sampling from pure noise gives noise")


SHORT_CHAIN_FIX = (f"raise {label('diffusion.beta_end')}, or set {label('diffusion.beta_schedule')} "
                   "to linear_scaled (improved-diffusion's linear: both ends scaled by 1000/T) or "
                   "cosine")
