"""Samplers against the analytic oracle: Gaussian data N(mu, s^2 I).

For such data the optimal noise predictor is linear in x_t at every t:
  x_t ~ N(sqrt(ab) mu, ab s^2 + 1 - ab),  E[eps | x_t] = sqrt(1-ab) (x_t - sqrt(ab) mu) / (ab s^2 + 1 - ab).
Each sampler step is then x' = A x + B + sigma z, so the exact mean and variance of the
discretized chain's output follow from m' = A m + B, v' = A^2 v + sigma^2 (computed here in
float64, from the papers' equations, independently of the package).
"""
import numpy as np
import paddle
import pytest

from ppddpm import DDIMSampler, DDPMSampler, GaussianDiffusion, get_beta_schedule, respace
from ppddpm.samplers import ddim_timesteps

MU, S = 0.3, 0.5
SHAPE = [500, 1, 8, 16]  # 64,000 independent values per run
BETAS = get_beta_schedule("linear", 1000)
ABAR = np.cumprod(1.0 - BETAS)


def eps_coef(ab):
    return np.sqrt(1 - ab) / (ab * S ** 2 + 1 - ab)


class OracleEps:
    """The Bayes-optimal eps-predictor, indexed by *original* timesteps."""

    def __init__(self):
        self.a = paddle.to_tensor(eps_coef(ABAR).astype("float32"))
        self.b = paddle.to_tensor((eps_coef(ABAR) * np.sqrt(ABAR) * MU).astype("float32"))

    def __call__(self, x, t):
        return paddle.gather(self.a, t).reshape([-1, 1, 1, 1]) * x - \
            paddle.gather(self.b, t).reshape([-1, 1, 1, 1])


def x0_affine(ab):
    """x0_hat = P x + Q for the oracle (inverting eq. 4 with the oracle's eps)."""
    a = eps_coef(ab)
    return (1 - np.sqrt(1 - ab) * a) / np.sqrt(ab), np.sqrt(1 - ab) * a * MU


def ddpm_moments(abar, betas, large):
    """Exact output moments of ancestral sampling on a chain with these alpha-bars."""
    m, v = 0.0, 1.0
    abar_prev = np.append(1.0, abar[:-1])
    for i in range(len(abar) - 1, -1, -1):
        ab, abp, beta = abar[i], abar_prev[i], betas[i]
        P, Q = x0_affine(ab)
        c1 = beta * np.sqrt(abp) / (1 - ab)
        c2 = (1 - abp) * np.sqrt(1 - beta) / (1 - ab)
        A, B = c1 * P + c2, c1 * Q
        var = 0.0 if i == 0 else (beta if large else beta * (1 - abp) / (1 - ab))
        m, v = A * m + B, A * A * v + var
    return m, v


def ddim_moments(seq, eta, start=(0.0, 1.0)):
    m, v = start
    prev = [-1] + list(seq[:-1])
    for t, tp in zip(seq[::-1], prev[::-1]):
        ab = ABAR[t]
        abp = 1.0 if tp < 0 else ABAR[tp]
        P, Q = x0_affine(ab)
        a = eps_coef(ab)
        sigma = eta * np.sqrt((1 - abp) / (1 - ab)) * np.sqrt(1 - ab / abp)
        d = np.sqrt(1 - abp - sigma ** 2)
        A = np.sqrt(abp) * P + d * a
        B = np.sqrt(abp) * Q - d * a * np.sqrt(ab) * MU
        m, v = A * m + B, A * A * v + sigma ** 2
    return m, v


def check_moments(x, m, v):
    x = x.numpy().astype(np.float64).ravel()
    n = x.size
    # 5-sigma bounds of the sample mean and variance of n independent Gaussians.
    assert abs(x.mean() - m) < 5 * np.sqrt(v / n), (x.mean(), m)
    assert abs(x.var() - v) < 5 * v * np.sqrt(2.0 / n), (x.var(), v)


@pytest.mark.parametrize("var_type", ["fixed_large", "fixed_small"])
def test_ddpm_1000_steps_matches_recursion(var_type):
    diffusion = GaussianDiffusion(BETAS, "eps", var_type)
    x = DDPMSampler(diffusion, clip_denoised=False).sample(OracleEps(), SHAPE, seed=1, progress=False)
    m, v = ddpm_moments(ABAR, BETAS, large=var_type == "fixed_large")
    check_moments(x, m, v)
    # 1000 steps reproduce the data distribution closely.
    assert abs(m - MU) < 5e-3 and abs(v - S ** 2) < 5e-3


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_50_steps_matches_recursion(eta):
    diffusion = GaussianDiffusion(BETAS, "eps", "fixed_small")
    sampler = DDIMSampler(diffusion, num_steps=50, eta=eta, clip_denoised=False)
    x = sampler.sample(OracleEps(), SHAPE, seed=2, progress=False)
    m, v = ddim_moments(ddim_timesteps(1000, num_steps=50), eta)
    check_moments(x, m, v)


def test_respaced_100_steps_matches_recursion():
    spaced = respace(GaussianDiffusion(BETAS, "eps", "fixed_small"), "100")
    assert spaced.num_timesteps == 100
    x = DDPMSampler(spaced, clip_denoised=False).sample(OracleEps(), SHAPE, seed=3, progress=False)
    abar = ABAR[spaced.timestep_map]
    betas = 1 - abar / np.append(1.0, abar[:-1])
    m, v = ddpm_moments(abar, betas, large=False)
    check_moments(x, m, v)


def test_recursion_converges_to_data_and_few_steps_are_off():
    errors = []
    for n in (10, 50, 200, 1000):
        m, v = ddim_moments(ddim_timesteps(1000, num_steps=n), 0.0)
        errors.append(abs(m - MU) + abs(v - S ** 2))
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    # What remains at 1000 steps is the prior mismatch: x_T ~ N(0, 1) while q(x_T) has mean
    # sqrt(abar_T) mu = 0.002; started from the exact q(x_T), only discretisation error is left.
    assert errors[-1] < 4e-3
    exact_start = (np.sqrt(ABAR[-1]) * MU, ABAR[-1] * S ** 2 + 1 - ABAR[-1])
    m, v = ddim_moments(ddim_timesteps(1000, num_steps=1000), 0.0, start=exact_start)
    assert abs(m - MU) + abs(v - S ** 2) < 2e-3  # O(1/steps) discretisation error left
    # Ten DDIM steps are measurably off (this is expected, not a bug).
    assert errors[0] > 10 * errors[-1]
    # Respaced ancestral sampling (fixed_small) also converges as steps are added; with
    # few steps its variance is too small, the effect Improved DDPM's learned variances fix.
    spaced_errors = []
    for n in (50, 100, 250, 1000):
        abar = ABAR[ddim_timesteps(1000, num_steps=n)]
        m_s, v_s = ddpm_moments(abar, 1 - abar / np.append(1.0, abar[:-1]), large=False)
        spaced_errors.append(abs(m_s - MU) + abs(v_s - S ** 2))
    assert all(a > b for a, b in zip(spaced_errors, spaced_errors[1:])), spaced_errors
    assert spaced_errors[-1] < 4e-3


def test_ode_solvers_follow_the_exact_flow_of_gaussian_data():
    """For N(mu, s^2) data the probability-flow ODE is x_t = sqrt(ab_t) mu + sqrt(v_t) z with
    z fixed by x_T, so each start point has an exact end point at every t (then the last
    step to the data, x0_hat at the last grid point: t = 0 for DDIM, the smallest point
    above 0 for the solvers, which never evaluate t = 0). The solvers converge to it at
    second order or better, DDIM at first order (log-SNR grids: 10, 20, 40 steps)."""
    from ppddpm.samplers import DPMSolverPPSampler, DPMSolverSampler, UniPCSampler
    diffusion = GaussianDiffusion(BETAS, "eps", "fixed_small")
    x_T = np.random.default_rng(0).standard_normal([16, 1, 2, 2]).astype(np.float32)
    v = ABAR * S ** 2 + 1 - ABAR
    z = (x_T.astype(np.float64) - np.sqrt(ABAR[-1]) * MU) / np.sqrt(v[-1])
    def error(sampler):
        t_end = sampler.steps[-1][0]
        P, Q = x0_affine(ABAR[t_end])
        ref = P * (np.sqrt(ABAR[t_end]) * MU + np.sqrt(v[t_end]) * z) + Q
        x = sampler.sample(OracleEps(), x_T.shape, noise=x_T, progress=False).numpy()
        return np.abs(x - ref).max()

    steps = (10, 20, 40)
    ddim = [error(DDIMSampler(diffusion, num_steps=n, skip="logsnr", clip_denoised=False))
            for n in steps]
    assert 1.6 < ddim[0] / ddim[1] < 2.5 and 1.6 < ddim[1] / ddim[2] < 2.5, ddim
    for cls, order in ((DPMSolverPPSampler, 2), (DPMSolverPPSampler, 3), (DPMSolverSampler, 2),
                       (UniPCSampler, 2)):
        errs = [error(cls(diffusion, num_steps=n, spacing="logsnr", order=order,
                          clip_denoised=False)) for n in steps]
        assert errs[1] / errs[2] > 3.0, (cls.__name__, order, errs)   # 4 for second order
        assert errs[2] < ddim[2] / 5, (cls.__name__, order, errs, ddim)
