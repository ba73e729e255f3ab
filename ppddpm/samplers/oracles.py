"""Exact models for testing samplers: the Bayes-optimal predictors of Gaussian-mixture data.

For data x0 ~ sum_k w_k N(mu_k, s^2 I) and x_t = sqrt(abar) x0 + sqrt(1 - abar) eps, the
noised density is the mixture sum_k w_k N(sqrt(abar) mu_k, v I) with v = abar s^2 + 1 - abar,
so its score is closed form and the optimal noise predictor E[eps | x_t] = -sqrt(1-abar) score:

  eps*(x_t) = sqrt(1 - abar) sum_k r_k(x_t) (x_t - sqrt(abar) mu_k) / v,
  r_k(x_t) = softmax_k(log w_k - |x_t - sqrt(abar) mu_k|^2 / (2 v)),

and x0*(x_t) = E[x0 | x_t] = (x_t - sqrt(1 - abar) eps*) / sqrt(abar) (eq. 4 inverted).
A sampler driven by it can only be wrong by its own discretisation, so the distance of
its samples to fresh data measures the sampler alone. One component is plain Gaussian data.
"""
from __future__ import annotations

import numpy as np
import paddle
from scipy.integrate import solve_ivp

from ..data.toy import mixture_spec


class GaussianMixtureOracle:
    """``model(x, t)`` for points of dimension D (as [N, D] or [N, D, 1, 1] tensors).

    ``alphas_cumprod`` is the table of the *original* timesteps the model is called with;
    ``output`` is "eps" (an eps-model) or "x0" (an x0-model).
    """

    def __init__(self, means, std: float, alphas_cumprod, weights=None, output: str = "eps"):
        self.means = np.atleast_2d(np.asarray(means, dtype=np.float64))
        self.std = float(std)
        K = len(self.means)
        w = np.full(K, 1.0 / K) if weights is None else np.asarray(weights, dtype=np.float64)
        self.log_weights = np.log(w / w.sum())
        self.abar = np.asarray(alphas_cumprod, dtype=np.float64)
        if output not in ("eps", "x0"):
            raise ValueError(f"output must be 'eps' or 'x0', got {output!r}")
        self.output = output

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def eps_np(self, x: np.ndarray, abar) -> np.ndarray:
        """E[eps | x_t = x] for x [N, D] and alpha-bar (scalar or [N]), float64."""
        x = np.asarray(x, dtype=np.float64)
        ab = np.broadcast_to(np.asarray(abar, dtype=np.float64), (len(x),))[:, None, None]
        v = ab * self.std ** 2 + 1.0 - ab
        diff = x[:, None, :] - np.sqrt(ab) * self.means[None]          # [N, K, D]
        logits = self.log_weights[None] - (diff ** 2).sum(-1) / (2 * v[:, :, 0])
        logits -= logits.max(axis=1, keepdims=True)
        r = np.exp(logits)
        r /= r.sum(axis=1, keepdims=True)
        return np.sqrt(1.0 - ab[:, :, 0]) * (r[:, :, None] * diff).sum(1) / v[:, :, 0]

    def x0_np(self, x: np.ndarray, abar) -> np.ndarray:
        ab = np.broadcast_to(np.asarray(abar, dtype=np.float64), (len(x),))[:, None]
        return (x - np.sqrt(1.0 - ab) * self.eps_np(x, abar)) / np.sqrt(ab)

    def __call__(self, x, t, **unused):
        shape = x.shape
        pts = x.numpy().reshape(shape[0], -1).astype(np.float64)
        ab = self.abar[t.numpy().astype(np.int64)]
        out = self.eps_np(pts, ab) if self.output == "eps" else self.x0_np(pts, ab)
        return paddle.to_tensor(out.astype(np.float32).reshape(shape))

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` data points [n, D] (float64)."""
        rng = np.random.default_rng(seed)
        k = rng.choice(len(self.means), size=n, p=np.exp(self.log_weights))
        return self.means[k] + self.std * rng.standard_normal((n, self.dim))

    def ode_solution(self, x_start: np.ndarray, abar_start: float, abar_end: float,
                     rtol: float = 1e-10, atol: float = 1e-10) -> np.ndarray:
        """The probability-flow ODE from x at alpha-bar ``abar_start`` to ``abar_end``,
        solved to tolerance by scipy (DOP853) in y = x / alpha over lambda, where
        dy/dlambda = -e^{-lambda} eps*(alpha y) (DPM-Solver eq. 3.3): an independent
        reference for the solvers' discretisation error."""
        lam = lambda ab: 0.5 * (np.log(ab) - np.log1p(-ab))
        shape = x_start.shape
        alpha = lambda l: np.sqrt(1.0 / (1.0 + np.exp(-2.0 * l)))   # abar = sigmoid(2 lambda)

        def f(l, y):
            a = alpha(l)
            x = (a * y).reshape(shape)
            return (-np.exp(-l) * self.eps_np(x, a * a)).ravel()

        l0, l1 = lam(abar_start), lam(abar_end)
        y0 = (np.asarray(x_start, dtype=np.float64) / np.sqrt(abar_start)).ravel()
        sol = solve_ivp(f, (l0, l1), y0, method="DOP853", rtol=rtol, atol=atol)
        if not sol.success:
            raise RuntimeError(f"reference ODE solve failed: {sol.message}")
        return sol.y[:, -1].reshape(shape) * np.sqrt(abar_end)


def gaussian8_oracle(alphas_cumprod, output: str = "eps") -> GaussianMixtureOracle:
    """The exact model of the 2-D ``gaussian8`` toy set (ppddpm/data/toy.py)."""
    means, std = mixture_spec("gaussian8")
    return GaussianMixtureOracle(means, std, alphas_cumprod, output=output)
