"""What the multistep ODE solvers share: the grid, the per-run history of model outputs,
the order schedule and the exponential-integrator weights.

The probability-flow ODE of a VP diffusion, written in lambda = log(alpha / sigma), has an
exactly integrable linear part (DPM-Solver eq. 3.4; DPM-Solver++ eq. 8):

  data prediction:  x_t = (sigma_t / sigma_s) x_s + alpha_t int_{l_s}^{l_t} e^{l} x0(l) dl / e^{l_t}
  noise prediction: x_t = (alpha_t / alpha_s) x_s - sigma_t int_{l_s}^{l_t} e^{-l} eps(l) dl * e^{l_t}

A k-th order multistep method replaces x0(l) (or eps(l)) by the polynomial through the last
k model outputs and integrates it exactly; the weights of those outputs are scalars,
computed here in float64.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence

import numpy as np

from ..config.names import SOLVER_DEFAULTS
from .base import Sampler
from .continuous import LogSNRTable, model_predictions
from .spacing import solver_grid


def phi_increments(h: float, order: int, data_prediction: bool) -> np.ndarray:
    """int_0^h e^{-(h-u)} u^k / k! du (data) or int_0^h e^{h-u} u^k / k! du (noise), k < order.

    Both are sum_i (-+1)^i h^(k+1+i) / (k+1+i)!, summed as a series for small h (no
    cancellation) and by the recursion psi_k = h^k/k! - psi_{k-1} (chi_k = chi_{k-1} - h^k/k!)
    from psi_0 = 1 - e^{-h} (chi_0 = e^h - 1) otherwise.
    """
    sign = -1.0 if data_prediction else 1.0
    out = np.zeros(order)
    if h < 1.0:
        for k in range(order):
            out[k] = sum(sign ** i * h ** (k + 1 + i) / math.factorial(k + 1 + i) for i in range(30))
        return out
    out[0] = -math.expm1(-h) if data_prediction else math.expm1(h)
    for k in range(1, order):
        term = h ** k / math.factorial(k)
        out[k] = term - out[k - 1] if data_prediction else out[k - 1] - term
    return out


def interpolant_weights(offsets: Sequence[float], h: float, data_prediction: bool,
                        midpoint: bool = False, half_second_derivative: bool = False
                        ) -> np.ndarray:
    """Weights w_j of the stored outputs m_j at lambda_s + offsets[j] (offsets[0] = 0, then
    negative, newest first): the update's integral equals sum_j w_j m_j.

    The polynomial through the points has Taylor coefficients c = V^-1 m at lambda_s, with
    V[j, k] = u_j^k / k!, so w = V^-T phi. With ``midpoint`` and two points, the first
    derivative term uses DPM-Solver++ Algorithm 2's form phi_0 * h / 2 instead of phi_1
    (the same second order; the papers' 2M). ``half_second_derivative`` (three points)
    halves the second-derivative term, as the third-order multistep update of DPM-Solver's
    published code and of diffusers does: their D2 = (D1_0 - D1_1) / (r0 + r1) is
    f'' h^2 / 2 but gets the weight of f'' h^2, which leaves a local error of order h^3.
    """
    u = np.asarray(offsets, dtype=np.float64)
    k = len(u)
    phi = phi_increments(h, k, data_prediction)
    if k == 1:
        return phi[:1]
    if midpoint and k == 2:
        phi = np.array([phi[0], phi[0] * h / 2.0])
    if half_second_derivative and k == 3:
        phi = np.array([phi[0], phi[1], phi[2] / 2.0])
    V = np.array([[u_j ** i / math.factorial(i) for i in range(k)] for u_j in u])
    return np.linalg.solve(V.T, phi)


class MultistepSolver(Sampler):
    """Base of the multistep solvers: ``steps`` from a solver grid (spacing.solver_grid: no
    evaluation at t = 0), a per-run history reset by ``progressive()``, model outputs as
    (x0, eps) via ``model_predictions``.

    ``order``: the highest order used. The first steps use lower orders (not enough
    history yet), the last step, from the smallest grid point to the data, is first order
    (lambda = +inf there: x_0 = x0_hat), and with fewer than 15 steps the one before it is
    at most second order ("lower order final", DPM-Solver++ sec. 6, as diffusers'
    DPMSolverMultistepScheduler). ``order`` and ``spacing`` left None take the defaults of
    config.names.SOLVER_DEFAULTS under the class's registry ``name``, as the command line does.
    """

    name = ""          # the registry name (config/names.py) whose defaults apply
    max_order = 3

    def __init__(self, diffusion, num_steps: Optional[int] = None, stride: Optional[int] = None,
                 spacing: Optional[str] = None, order: Optional[int] = None,
                 timesteps: Optional[Sequence[int]] = None, clip_denoised: bool = True,
                 clipped_eps: Optional[bool] = None, threshold: Optional[float] = None,
                 model_kwargs=None, published_third_order: bool = False):
        super().__init__(clip_denoised, model_kwargs, clipped_eps, threshold)
        # the third-order update as DPM-Solver's code and diffusers write it (see
        # interpolant_weights); off: the quadratic integrated exactly
        self.published_third_order = bool(published_third_order)
        defaults = SOLVER_DEFAULTS[self.name]
        order = defaults["order"] if order is None else int(order)
        if not 1 <= order <= self.max_order:
            raise ValueError(f"{type(self).__name__} order must be in [1, {self.max_order}], "
                             f"got {order}")
        self.diffusion = diffusion
        self.order = order
        self.spacing = defaults["spacing"] if spacing is None else spacing
        if timesteps is not None:
            seq = sorted({int(t) for t in timesteps})
            if seq[0] < 1:
                raise ValueError(f"a solver's timesteps must be >= 1 (it steps from the "
                                 f"smallest to the data and never evaluates t = 0), got {seq[0]}")
        else:
            if num_steps is None and stride is None:
                raise ValueError("give num_steps (or a stride)")
            seq = solver_grid(diffusion.alphas_cumprod, num_steps, self.spacing,
                              stride=stride if num_steps is None else None)
        prev = [-1] + seq[:-1]
        self.steps = list(zip(seq[::-1], prev[::-1]))
        self.table = LogSNRTable(diffusion.alphas_cumprod)
        self.reset()

    def reset(self) -> None:
        self.history: List[tuple] = []   # (t, output tensor), newest last, max_order kept
        self.taken = 0                     # outputs pushed this run: the step's index + 1

    def uses_noise(self, t: int, t_prev: int) -> bool:
        return False   # ODE solvers: x_T is the only noise

    def predictions(self, model, x, t: int):
        return model_predictions(self.diffusion, model, x, t, self.clip_denoised,
                                 self.eps_from_clipped_x0, self.model_kwargs, self.threshold)

    def order_now(self) -> int:
        """The order of the update about to be taken (history already holds this step)."""
        i = self.taken - 1                         # index of this step in self.steps
        remaining = len(self.steps) - i
        order = min(self.order, len(self.history))
        if remaining == 1:
            return 1
        if remaining == 2 and len(self.steps) < 15:
            return min(order, 2)
        return order

    def push(self, t: int, output) -> None:
        self.history.append((t, output))
        del self.history[:-self.max_order]
        self.taken += 1

    def exponential_step(self, x, t: int, t_prev: int, data_prediction: bool):
        """x_{t_prev} from x_t and the newest ``order_now()`` outputs in the history (x0 for
        data prediction, eps for noise prediction): the module docstring's formulas with
        the interpolant's weights (DPM-Solver++ eq. 8, DPM-Solver eq. 3.4)."""
        tab = self.table
        lam_s = tab.lam(t)
        h = tab.lam(t_prev) - lam_s
        recent = self.history[::-1][:self.order_now()]   # newest first
        offsets = [tab.lam(ti) - lam_s for ti, _ in recent]
        w = interpolant_weights(offsets, h, data_prediction=data_prediction, midpoint=True,
                                half_second_derivative=self.published_third_order)
        if data_prediction:
            keep, scale = tab.sigma(t_prev) / tab.sigma(t), tab.alpha(t_prev)
        else:
            keep, scale = tab.alpha(t_prev) / tab.alpha(t), -tab.sigma(t_prev)
        return self.combine([keep] + list(scale * w), [x] + [m for _, m in recent])

    def combine(self, coefs, tensors):
        out = None
        for c, v in zip(coefs, tensors):
            if c == 0.0:
                continue
            out = float(c) * v if out is None else out + float(c) * v
        return out
