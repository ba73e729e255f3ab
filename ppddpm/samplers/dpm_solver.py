"""DPM-Solver multistep (Lu et al. 2022, "DPM-Solver", sec. 3 and app. B), noise prediction.

  x_t = (alpha_t / alpha_s) x_s - sigma_t sum_j w_j eps_j      (eq. 3.4 with the
                                                               interpolant of multistep.py)

order 1 is DDIM with eta 0 (DPM-Solver-1, eq. 4.1); order 2 uses the multistep form
eps_0 + (eps_0 - eps_1) / (2r) (r = h_prev / h); order 3 integrates the quadratic through
the last three noise predictions exactly. The noise predictions are the model's own; with
``clipped_eps`` they are re-derived from the clipped x0 (as DPM-Solver's thresholding
with noise prediction does). The last step, to the data, returns x0_hat (clipped with
``clip_denoised``), the limit of the first-order update as sigma_t -> 0.
"""
from __future__ import annotations

from .multistep import MultistepSolver


class DPMSolverSampler(MultistepSolver):
    name = "dpm_solver"
    def step(self, model, x, t, t_prev, noise):
        x0, eps = self.predictions(model, x, t)
        self.push(t, eps)
        if t_prev < 0:
            return x0, x0
        return self.exponential_step(x, t, t_prev, data_prediction=False), x0
