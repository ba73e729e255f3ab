"""DPM-Solver++ multistep (Lu et al. 2022, "DPM-Solver++", Algorithm 2), data prediction.

  x_t = (sigma_t / sigma_s) x_s + alpha_t sum_j w_j x0_j       (eq. 8 with the
                                                               interpolant of multistep.py)

order 1: w_0 = 1 - e^{-h}, which is DDIM with eta 0 (DPM-Solver++ sec. 4.1);
order 2: Algorithm 2, D = (1 + 1/(2r)) x0_0 - 1/(2r) x0_1 with r = h_prev / h;
order 3: the quadratic through the last three x0 predictions, integrated exactly.
With ``clip_denoised`` the x0 predictions are clipped to the data range before they enter
the update: the thresholding that data prediction makes possible (sec. 4.2).
"""
from __future__ import annotations

from .multistep import MultistepSolver


class DPMSolverPPSampler(MultistepSolver):
    name = "dpm_solver++"
    def step(self, model, x, t, t_prev, noise):
        x0, _ = self.predictions(model, x, t)
        self.push(t, x0)
        if t_prev < 0:
            return x0, x0                     # lambda = +inf: x_0 = x0_hat
        return self.exponential_step(x, t, t_prev, data_prediction=True), x0
