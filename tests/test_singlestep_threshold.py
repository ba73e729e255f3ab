"""Singlestep DPM-Solver against the exact ODE of a Gaussian mixture; Imagen's dynamic
thresholding against its formula; the guided default of eps beside a clipped x0; the
command line's errors for the new settings."""
import numpy as np
import paddle
import pytest

from helpers_mixture import smooth_mixture_case
from ppddpm.diffusion import GaussianDiffusion
from ppddpm.diffusion.schedules import get_beta_schedule
from ppddpm.samplers import (DDIMSampler, DDPMSampler, DPMSolverPPSampler,
                             DPMSolverSinglestepSampler, dynamic_threshold)
from ppddpm.samplers.dpm_solver_singlestep import step_orders
from ppddpm.samplers.oracles import GaussianMixtureOracle, gaussian8_oracle

BETAS = get_beta_schedule("linear", 1000)
DIFF = GaussianDiffusion(BETAS, "eps", "fixed_small")
ABAR = DIFF.alphas_cumprod


def run(sampler, model, x_T, **kw):
    n = len(x_T)
    noise = paddle.to_tensor(x_T.reshape(n, -1, 1, 1).astype(np.float32))
    out = sampler.sample(model, [n, x_T.shape[1], 1, 1], seed=0, noise=noise, progress=False,
                         **kw)
    return out.numpy().reshape(n, -1).astype(np.float64)


def test_step_orders_use_every_evaluation_and_end_first_order():
    for order in (1, 2, 3):
        for n in range(1, 40):
            orders = step_orders(n, order)
            assert sum(orders) == n and orders[-1] == 1 and max(orders) <= order
            assert orders[:-1] == sorted(orders[:-1], reverse=True)   # lower orders last
    assert step_orders(10, 3) == [3, 3, 3, 1] and step_orders(11, 3) == [3, 3, 2, 2, 1]
    assert step_orders(11, 2) == [2] * 5 + [1]


@pytest.fixture(scope="module")
def smooth_case():
    return smooth_mixture_case(ABAR, 100, 1e-9)


@pytest.mark.parametrize("order,nfes", [(2, [11, 15, 21, 29, 41, 57]),
                                        (3, [10, 13, 19, 28, 40, 55])])
def test_singlestep_error_falls_at_its_order(order, nfes, smooth_case):
    oracle, x_T, reference = smooth_case
    errors = []
    for n in nfes:
        s = DPMSolverSinglestepSampler(DIFF, num_steps=n, order=order, clip_denoised=False)
        assert s.num_steps == n                      # NFE = grid points
        errors.append(np.sqrt(((run(s, oracle, x_T) - reference(s.steps[-1][0])) ** 2).mean()))
    slope = np.polyfit(np.log(nfes), np.log(errors), 1)[0]
    assert slope < -(order - 0.3), (slope, errors)


def test_first_order_singlestep_is_ddim():
    oracle = GaussianMixtureOracle([[0.5, 0.5], [-0.5, -0.3]], 0.3, ABAR)
    x_T = np.random.default_rng(1).standard_normal((32, 2))
    s = DPMSolverSinglestepSampler(DIFF, num_steps=12, order=1, clip_denoised=False)
    ddim = DDIMSampler(DIFF, timesteps=[t for t, _ in s.steps], clip_denoised=False)
    np.testing.assert_allclose(run(s, oracle, x_T), run(ddim, oracle, x_T), atol=2e-5)


def test_dynamic_threshold_is_imagens_formula():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 4, 4)) * np.array([0.2, 2.0, 5.0])[:, None, None, None]
    for p in (0.5, 0.9, 0.995, 1.0):
        got = dynamic_threshold(paddle.to_tensor(x.astype(np.float32)), p).numpy()
        flat = np.abs(x.reshape(3, -1))
        s = np.maximum(np.quantile(flat, p, axis=1), 1.0)[:, None, None, None]
        np.testing.assert_allclose(got, np.clip(x, -s, s) / s, atol=1e-6)
    # below s = 1 nothing changes (sample 0: |x0| < 1 everywhere)
    np.testing.assert_allclose(got[0], x[0], atol=1e-7)
    # a constructed case: |x| = 0.1, 0.5, 2, 3 at the median: s = 1.25
    y = paddle.to_tensor(np.array([[0.5, -3.0, 2.0, 0.1]], dtype=np.float32))
    np.testing.assert_allclose(dynamic_threshold(y, 0.5).numpy(), [[0.4, -1.0, 1.0, 0.08]],
                               atol=1e-6)
    # another data range is mapped to [-1, 1] and back: [0, 1] data, s = 1.25 again
    z = paddle.to_tensor(np.array([[0.75, -1.0, 1.5, 0.55]], dtype=np.float32))
    np.testing.assert_allclose(dynamic_threshold(z, 0.5, (0.0, 1.0)).numpy(),
                               [[0.7, 0.0, 1.0, 0.54]], atol=1e-6)


def rough_model(x, t):
    """Not a denoiser: large eps, so x0 leaves [-1, 1] and any clip bites."""
    return paddle.tanh(3.0 * x) * (1.5 + t.astype("float32").reshape([-1, 1, 1, 1]) / 500.0)


def test_thresholded_samplers_use_the_thresholded_x0():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 3, 4, 4)).astype(np.float32)
    t, t_prev = 300, 200
    eps = rough_model(paddle.to_tensor(x), paddle.full([4], t, "int64")).numpy().astype(np.float64)
    raw = (x - np.sqrt(1 - ABAR[t]) * eps) / np.sqrt(ABAR[t])
    s = np.maximum(np.quantile(np.abs(raw.reshape(4, -1)), 0.9, axis=1), 1.0)[:, None, None, None]
    assert (s > 1).all()
    x0 = np.clip(raw, -s, s) / s
    # DDIM eq. 12 with eta 0 and the model's eps (unguided default)
    ddim = DDIMSampler(DIFF, num_steps=10, threshold=0.9)
    got, got_x0 = ddim.step(rough_model, paddle.to_tensor(x), t, t_prev, None)
    np.testing.assert_allclose(got_x0.numpy(), x0, atol=2e-5)
    want = np.sqrt(ABAR[t_prev]) * x0 + np.sqrt(1 - ABAR[t_prev]) * eps
    np.testing.assert_allclose(got.numpy(), want, atol=5e-5)
    # DDPM: the posterior mean (Ho et al. eq. 7) of the thresholded x0
    z = rng.standard_normal(x.shape).astype(np.float32)
    got, _ = DDPMSampler(DIFF, threshold=0.9).step(rough_model, paddle.to_tensor(x), t, t - 1,
                                                    paddle.to_tensor(z))
    c0, ct = DIFF.posterior_mean_coef1[t], DIFF.posterior_mean_coef2[t]
    want = c0 * x0 + ct * x + np.sqrt(DIFF.posterior_variance[t]) * z
    np.testing.assert_allclose(got.numpy(), want, atol=5e-5)
    # DPM-Solver++ (data prediction): its first step is DDIM's
    pp = DPMSolverPPSampler(DIFF, timesteps=[t_prev, t], threshold=0.9)
    got, _ = pp.step(rough_model, paddle.to_tensor(x), t, t_prev, None)
    ddim_x = np.sqrt(ABAR[t_prev]) * x0 + np.sqrt(1 - ABAR[t_prev]) * (
        x - np.sqrt(ABAR[t]) * x0) / np.sqrt(1 - ABAR[t])
    np.testing.assert_allclose(got.numpy(), ddim_x, atol=5e-5)


def test_exact_model_is_untouched_by_thresholding():
    oracle = gaussian8_oracle(ABAR)        # its x0 predictions stay inside [-1, 1]
    x_T = np.random.default_rng(3).standard_normal((64, 2))
    for make in (lambda **kw: DDIMSampler(DIFF, num_steps=10, **kw),
                 lambda **kw: DPMSolverSinglestepSampler(DIFF, num_steps=10, **kw)):
        np.testing.assert_allclose(run(make(threshold=0.995), oracle, x_T),
                                   run(make(clip_denoised=False), oracle, x_T), atol=1e-6)


class TwoClassRough:
    """A conditional "network" (2 classes + the null label 2) whose x0 leaves [-1, 1]."""
    num_classes = 2

    def __call__(self, x, t, y):
        shift = (y.astype("float32") - 1.0).reshape([-1, 1, 1, 1])
        return rough_model(x, t) + 0.3 * shift


def test_guided_runs_take_eps_from_the_clipped_x0_by_default():
    x_T = paddle.to_tensor(np.random.default_rng(4).standard_normal((4, 3, 4, 4)).astype(np.float32))
    y = np.array([0, 1, 0, 1])
    model = TwoClassRough()

    def sample(guidance, **kw):
        return DDIMSampler(DIFF, num_steps=5, **kw).sample(
            model, x_T.shape, noise=x_T, progress=False, y=y, guidance_scale=guidance).numpy()
    np.testing.assert_array_equal(sample(1.0), sample(1.0, clipped_eps=True))
    np.testing.assert_array_equal(sample(0.0), sample(0.0, clipped_eps=False))
    assert np.abs(sample(1.0) - sample(1.0, clipped_eps=False)).max() > 1e-2   # the clip bites


def test_command_line_errors_for_the_new_settings(tmp_path, capsys, monkeypatch):
    """One subprocess per path (a bad quantile; a solver asked for every step, refused before
    training), the other bad values in-process: one line, exit 2, nothing written."""
    from helpers_cli import ROOT, run as run_cli
    from ppddpm.cli import main
    for args, words in ((["--mode", "denoise", "--dynamic_threshold", "1.5"], "sample.threshold"),
                        (["--sampler", "unipc", "--training_iters", "2", "--steps", "1000"],
                         "never evaluates t = 0")):
        err = run_cli("run_toy.py", *args, cwd=str(tmp_path), expect=2).stderr.strip()
        assert len(err.splitlines()) == 1 and err.startswith("error:") and words in err, err
    monkeypatch.chdir(tmp_path)
    for args, words in ((["--dynamic_threshold", "0"], "must be in (0, 1], got 0"),
                        (["--sampler", "dpm_solver_3s"], "dpm_solver_singlestep")):
        capsys.readouterr()
        assert main(f"{ROOT}/configs/toy.yaml", "t", argv=["--mode", "denoise", "--quiet", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("error:") and words in err, err
    assert not list(tmp_path.iterdir())                  # nothing written
