"""ppddpm's multistep solvers step by step against diffusers' schedulers.

tests/fixtures/solver_steps.npz (tools/make_solver_fixture.py, diffusers 0.42.1) holds
DPMSolverMultistepScheduler (dpmsolver++ and dpmsolver) and UniPCMultistepScheduler, orders
1-3, spacings leading / linspace / trailing at 10 and 20 steps, run on the exact noise
predictor of a 2-D Gaussian mixture: their timesteps and x after every step. ppddpm's
solvers on the same spacing (leading = ppddpm's uniform) must visit the same timesteps,
never t = 0, and give the same x after each step.
"""
import os

import numpy as np
import paddle
import pytest

from ppddpm.diffusion import GaussianDiffusion
from ppddpm.samplers import (DPMSolverPPSampler, DPMSolverSampler, UniPCSampler,
                             solver_grid, timestep_grid)
from ppddpm.samplers.oracles import GaussianMixtureOracle

FIXTURE = np.load(os.path.join(os.path.dirname(__file__), "fixtures", "solver_steps.npz"))
DIFF = GaussianDiffusion(FIXTURE["betas"], "eps", "fixed_small")
ABAR = DIFF.alphas_cumprod
ORACLE = GaussianMixtureOracle(FIXTURE["means"], float(FIXTURE["std"]), ABAR)
X_T = FIXTURE["x_T"]
SPACINGS = {"leading": "uniform", "linspace": "linspace", "trailing": "trailing"}
SOLVERS = {"dpmsolver++": DPMSolverPPSampler, "dpmsolver": DPMSolverSampler,
           "unipc": UniPCSampler}
# float32 on both sides, x of order 1: what 20 steps of rounding leave
ATOL = 2e-5


def frames(sampler) -> np.ndarray:
    """x_T and x after every step, [steps + 1, N, 2]."""
    n = len(X_T)
    noise = paddle.to_tensor(X_T.reshape(n, 2, 1, 1).astype(np.float32))
    out = [f["x"].numpy().reshape(n, 2) for f in sampler.progressive(ORACLE, [n, 2, 1, 1],
                                                                      noise=noise)]
    return np.stack([X_T] + out).astype(np.float64)


@pytest.mark.parametrize("name", list(SOLVERS))
@pytest.mark.parametrize("spacing", list(SPACINGS))
def test_same_timesteps_and_x_after_each_step(name, spacing):
    for n in (10, 20):
        for order in (1, 2, 3):
            key = f"{name}/{spacing}/{n}/{order}"
            sampler = SOLVERS[name](DIFF, num_steps=n, spacing=SPACINGS[spacing], order=order,
                                    clip_denoised=False, published_third_order=True)
            times = [t for t, _ in sampler.steps]
            assert times == FIXTURE[key + "/timesteps"].tolist(), key
            assert min(times) > 0, key                       # never an evaluation at t = 0
            got, want = frames(sampler), FIXTURE[key + "/x"]
            if name == "dpmsolver":
                # diffusers' noise form ends at sigma_min (t = 0), ppddpm at the data: the
                # last step is x0_hat of the x before it (DPM-Solver eq. 3.4 as sigma -> 0)
                np.testing.assert_allclose(got[:-1], want[:-1], atol=ATOL, rtol=0, err_msg=key)
                np.testing.assert_allclose(got[-1], ORACLE.x0_np(got[-2], ABAR[times[-1]]),
                                           atol=ATOL, rtol=0, err_msg=key)
            else:
                np.testing.assert_allclose(got, want, atol=ATOL, rtol=0, err_msg=key)


def test_exact_third_order_differs_from_the_published_one_only_from_the_third_step():
    """ppddpm's default third-order step integrates the quadratic through the last three
    outputs exactly; the published code (and diffusers) weights its second-derivative term
    by half. The two agree on the first two steps (orders 1 and 2), then part."""
    for name, cls in (("dpmsolver++", DPMSolverPPSampler), ("dpmsolver", DPMSolverSampler)):
        exact = frames(cls(DIFF, num_steps=20, spacing="trailing", order=3, clip_denoised=False))
        paper = frames(cls(DIFF, num_steps=20, spacing="trailing", order=3, clip_denoised=False,
                           published_third_order=True))
        np.testing.assert_allclose(exact[:3], paper[:3], atol=1e-7, rtol=0)
        assert np.abs(exact[3:] - paper[3:]).max() > 2e-3      # measured: 4e-3 and 9e-3
        # so only the published form is diffusers' (checked above), and the exact one is not
        assert np.abs(exact[:-1] - FIXTURE[f"{name}/trailing/20/3/x"][:-1]).max() > 2e-3


def test_solver_grids_are_diffusers_and_never_hold_zero():
    T = len(ABAR)
    # diffusers' "leading": multiples of T // (n + 1), the 0 dropped; "linspace": n + 1
    # points from 0 to T - 1, the 0 dropped; "trailing": T - 1 down to T/n - 1
    assert solver_grid(ABAR, 10, "uniform") == list(range(90, 901, 90))
    assert solver_grid(ABAR, 10, "linspace") == [100, 200, 300, 400, 500, 599, 699, 799, 899, 999]
    assert solver_grid(ABAR, 10, "trailing") == list(range(99, 1000, 100))
    for spacing in ("uniform", "quadratic", "linspace", "trailing", "logsnr"):
        for n in (1, 5, 37, 200, T - 1):
            g = solver_grid(ABAR, n, spacing)
            assert len(g) == n and g == sorted(set(g)) and g[0] >= 1 and g[-1] < T, (spacing, n)
        # the grid ends where DDIM's grid of one point more ends, without its t = 0
        if spacing != "trailing":
            assert solver_grid(ABAR, 12, spacing) == timestep_grid(ABAR, 13, spacing)[1:]
    with pytest.raises(ValueError, match="never evaluates t = 0"):
        solver_grid(ABAR, T, "logsnr")
    with pytest.raises(ValueError, match="t = 0"):
        DPMSolverPPSampler(DIFF, timesteps=[0, 500, 999])


def test_python_and_the_config_share_the_defaults():
    from ppddpm.config import SampleConfig
    from ppddpm.config.names import SOLVER_DEFAULTS
    from ppddpm.samplers import SAMPLER_CLASSES, build_sampler
    for name, defaults in SOLVER_DEFAULTS.items():
        direct = SAMPLER_CLASSES[name](DIFF, num_steps=10)
        built = build_sampler(DIFF, SampleConfig(sampler=name, num_steps=10))
        assert (direct.order, direct.spacing) == (defaults["order"], defaults["spacing"])
        assert (built.order, built.spacing, built.steps) == (direct.order, direct.spacing,
                                                             direct.steps)
