"""UniPC (Zhao et al. 2023): the UniP predictor and the UniC corrector, data prediction.

Each step evaluates the model once at the predicted x_t; UniC then corrects x_t with that
output before UniP moves on from it (sec. 3.1, no extra evaluation), which raises the
order of accuracy by one (Theorem 3.1): order p here gives p + 1 with the corrector.

With h = lambda_t - lambda_s, D_i = (x0_{s_i} - x0_s) / r_i, r_i = (lambda_{s_i} - lambda_s)/h,
and B(h) = e^{-h} - 1 ("bh2"; "bh1": B(h) = -h), both updates are (eq. 6-8, Algorithm 2-3)

  x_t = (sigma_t / sigma_s) x_s - alpha_t (e^{-h} - 1) x0_s - alpha_t B(h) sum_i a_i D_i

where the a_i solve R a = g with R[k, i] = r_i^k and g_k = (k+1)! phi_{k+1}(-h) / B(h)
(phi_1(z) = (e^z - 1)/z, phi_{k+1}(z) = (phi_k(z) - 1/k!)/z). UniP uses the earlier points
(for two points a = 1/2); UniC adds the new output x0_t at r = 1.
The last step, to the data (lambda = +inf), returns x0_hat.
"""
from __future__ import annotations

import math

import numpy as np

from .multistep import MultistepSolver


def unipc_rhs(h: float, k: int, variant: str) -> np.ndarray:
    """g_0..g_{k-1} of the linear system, and B(h), for hh = -h (data prediction)."""
    hh = -h
    b_h = hh if variant == "bh1" else math.expm1(hh)
    phi = math.expm1(hh) / hh          # phi_1(hh)
    g = np.zeros(k)
    for i in range(k):
        # h_phi_{i+2} = phi_{i+2}(hh) * hh ... in the series form (k+1)! phi_{k+1}(hh) hh / B(h)
        phi_next = (phi - 1.0 / math.factorial(i + 1)) / hh  # phi_{i+2}(hh)
        g[i] = phi_next * hh * math.factorial(i + 1) / b_h
        phi = phi_next
    return g, b_h


class UniPCSampler(MultistepSolver):
    name = "unipc"
    max_order = 3

    def __init__(self, diffusion, *args, variant: str = "bh2", **kwargs):
        if variant not in ("bh1", "bh2"):
            raise ValueError(f"UniPC variant must be 'bh1' or 'bh2', got {variant!r}")
        self.variant = variant
        super().__init__(diffusion, *args, **kwargs)

    def reset(self) -> None:
        super().reset()
        self.last_x = None           # x_s, the (corrected) start of the previous update
        self.last_order = 0

    def order_now(self) -> int:
        i = self.taken - 1                         # index of this step in self.steps
        return min(self.order, len(self.history), len(self.steps) - i)

    def _update(self, x_s, t_s: int, t: int, points, new_output=None):
        """UniP (``new_output`` None) or UniC from (x_s, t_s) to t; ``points`` are
        (t_i, x0_i) newest first, points[0] at t_s."""
        tab = self.table
        lam_s = tab.lam(t_s)
        h = tab.lam(t) - lam_s
        m0 = points[0][1]
        rks = [(tab.lam(ti) - lam_s) / h for ti, _ in points[1:]]
        diffs = [(m - m0) for _, m in points[1:]]
        coefs = [tab.sigma(t) / tab.sigma(t_s), tab.alpha(t) * -math.expm1(-h)]
        tensors = [x_s, m0]
        n = len(rks) + (1 if new_output is not None else 0)
        if n:
            g, b_h = unipc_rhs(h, n, self.variant)
            if new_output is not None:
                rks = rks + [1.0]
                diffs = diffs + [new_output - m0]
            if new_output is None and n == 1:
                rhos = np.array([0.5])
            elif new_output is not None and n == 1:
                rhos = np.array([0.5])
            else:
                R = np.array([[r ** k for r in rks] for k in range(n)])
                rhos = np.linalg.solve(R, g)
            scale = -tab.alpha(t) * b_h
            coefs += [scale * rho / r for rho, r in zip(rhos, rks)]
            tensors += diffs
        return self.combine(coefs, tensors)

    def step(self, model, x, t, t_prev, noise):
        x0, _ = self.predictions(model, x, t)
        points_before = self.history[::-1]
        if self.last_x is not None:       # UniC: correct x_t with the new output
            prev_t = points_before[0][0]
            x = self._update(self.last_x, prev_t, t, points_before[:self.last_order],
                             new_output=x0)
        self.push(t, x0)
        if t_prev < 0:
            return x0, x0
        k = self.order_now()
        self.last_x, self.last_order = x, k
        return self._update(x, t, t_prev, self.history[::-1][:k]), x0
