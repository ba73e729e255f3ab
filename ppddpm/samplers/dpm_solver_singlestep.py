"""Singlestep DPM-Solver (Lu et al. 2022, "DPM-Solver"), noise prediction: DPM-Solver-2 and
-3 steps ("2S", "3S", the paper's Algorithms 1-2) combined to use up the evaluations as its
DPM-Solver-fast does.

One step of order k from s to t evaluates the model at s and at k - 1 intermediate points
s < s_1 < .. < t (in lambda), each reached from x_s by a lower-order update with the outputs
so far; the step to t then uses all k outputs. Every update is eq. 3.4 with the polynomial
through the outputs at hand integrated exactly (multistep.py's weights, offsets lambda_i -
lambda_s >= 0): the first is DPM-Solver-1 (DDIM), the second a linear, the third a quadratic
interpolant, so a step of order k has local error O(h^(k+1)) for any intermediate points.
(At r1 = 1/2 the paper's DPM-Solver-2 combination (e^h - 1) / (2 r1) D1 differs from the
exact integral of the line by O(h^3), the same order.)

The grid is the solvers' grid of N points (N = NFE; spacing.solver_grid, never t = 0) cut
into steps: the last point steps to the data alone (first order: x0_hat), the other N - 1
points form steps of ``order`` points, the remainder a lower-order step before the last
(3S: a remainder of one makes the last two steps 2S instead). On a log-SNR grid the
intermediate points then sit at r = 1/2 (2S) and r = 1/3, 2/3 (3S) of a step, the paper's
choice.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

from .multistep import MultistepSolver, interpolant_weights


def step_orders(num_points: int, order: int) -> List[int]:
    """The orders of the steps that use up ``num_points`` evaluations, the last one first
    order (to the data). Their sum is ``num_points``."""
    body, rest = divmod(num_points - 1, order)
    orders = [order] * body
    if order == 3 and rest == 1 and body:      # 3 + 1 evaluations as 2 + 2
        orders[-1:] = [2, 2]
    elif rest:
        orders.append(rest)
    return orders + [1]


class DPMSolverSinglestepSampler(MultistepSolver):
    name = "dpm_solver_singlestep"

    def __init__(self, diffusion, *args, **kwargs):
        super().__init__(diffusion, *args, **kwargs)
        self.orders = step_orders(len(self.steps), self.order)
        # grid point t -> (its place in its step, that step's start point)
        self.plan: Dict[int, Tuple[int, int]] = {}
        times = [t for t, _ in self.steps]
        i = 0
        for k in self.orders:
            for j in range(k):
                self.plan[times[i + j]] = (j, times[i])
            i += k

    def reset(self) -> None:
        super().reset()
        self.x_start = None
        self.outputs: List[tuple] = []     # (t, eps) of the current step, in order

    def step(self, model, x, t, t_prev, noise):
        x0, eps = self.predictions(model, x, t)
        place, start = self.plan[t]
        if place == 0:
            self.x_start, self.outputs = x, []
        self.outputs.append((t, eps))
        if t_prev < 0:
            return x0, x0                     # lambda = +inf: x_0 = x0_hat
        # x at t_prev (the next intermediate point, or the step's end) from x_start
        tab = self.table
        lam_s = tab.lam(start)
        h = tab.lam(t_prev) - lam_s
        offsets = [tab.lam(ti) - lam_s for ti, _ in self.outputs]
        w = interpolant_weights(offsets, h, data_prediction=False)
        keep, scale = tab.alpha(t_prev) / tab.alpha(start), -tab.sigma(t_prev)
        return self.combine([keep] + list(scale * w),
                            [self.x_start] + [m for _, m in self.outputs]), x0
