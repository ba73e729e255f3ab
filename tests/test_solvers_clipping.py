"""What clipping does: DDIM keeps the model's eps (diffusers' DDIM step) unless asked to
re-derive it from the clipped x0 (improved-diffusion); xprev models keep their mean."""
import numpy as np
import paddle

from ppddpm.diffusion import GaussianDiffusion
from ppddpm.samplers.oracles import gaussian8_oracle
from ppddpm.samplers import DDIMSampler, DDPMSampler, DPMSolverPPSampler, DPMSolverSampler
from ppddpm.diffusion.schedules import get_beta_schedule

BETAS = get_beta_schedule("linear", 1000)
ABAR = np.cumprod(1.0 - BETAS)


def rough_model(x, t):
    """Not a denoiser: large eps, so x0 = (x - sqrt(1-ab) eps)/sqrt(ab) leaves [-1, 1]."""
    return paddle.tanh(3.0 * x) * (1.5 + t.astype("float32").reshape([-1, 1, 1, 1]) / 500.0)


def diffusers_ddim_step(eps, x, t, t_prev, eta, z, use_clipped_model_output):
    """diffusers' DDIMScheduler.step as its documentation writes it (DDIM eq. 12), with
    clip_sample=True and set_alpha_to_one=True, in float64."""
    ab_t, ab_p = ABAR[t], (ABAR[t_prev] if t_prev >= 0 else 1.0)
    x0 = np.clip((x - np.sqrt(1 - ab_t) * eps) / np.sqrt(ab_t), -1, 1)
    if use_clipped_model_output:
        eps = (x - np.sqrt(ab_t) * x0) / np.sqrt(1 - ab_t)
    std = eta * np.sqrt((1 - ab_p) / (1 - ab_t) * (1 - ab_t / ab_p))
    return np.sqrt(ab_p) * x0 + np.sqrt(1 - ab_p - std ** 2) * eps + std * z


def test_ddim_step_is_diffusers_step_with_clipping():
    d = GaussianDiffusion(BETAS)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 4, 4)).astype(np.float32)
    z = rng.standard_normal(x.shape).astype(np.float32)
    for t, t_prev in ((500, 450), (40, 20), (10, -1)):
        eps = rough_model(paddle.to_tensor(x), paddle.full([4], t, "int64")).numpy().astype(np.float64)
        raw_x0 = (x - np.sqrt(1 - ABAR[t]) * eps) / np.sqrt(ABAR[t])
        assert (np.abs(raw_x0) > 1).mean() > 0.2                      # the clip bites
        for clipped_eps in (False, True):
            s = DDIMSampler(d, num_steps=10, eta=0.7, clipped_eps=clipped_eps)
            got, _ = s.step(rough_model, paddle.to_tensor(x), t, t_prev, paddle.to_tensor(z))
            want = diffusers_ddim_step(eps, x, t, t_prev, 0.7, z, clipped_eps)
            np.testing.assert_allclose(got.numpy(), want, atol=3e-5, rtol=1e-5)
        if t_prev >= 0:   # the two forms really differ (at t_prev = -1 both return clip(x0))
            a = diffusers_ddim_step(eps, x, t, t_prev, 0.7, z, False)
            b = diffusers_ddim_step(eps, x, t, t_prev, 0.7, z, True)
            assert np.abs(a - b).max() > 0.1


def test_both_eps_forms_agree_for_an_exact_model():
    d = GaussianDiffusion(BETAS)
    oracle = gaussian8_oracle(ABAR)     # its x0 predictions stay inside [-1, 1]
    x_T = paddle.to_tensor(np.random.default_rng(1).standard_normal((200, 2, 1, 1)).astype(np.float32))
    for make in (lambda c: DDIMSampler(d, num_steps=20, clipped_eps=c),
                 lambda c: DPMSolverSampler(d, num_steps=20, clipped_eps=c),
                 lambda c: DPMSolverPPSampler(d, num_steps=20, clipped_eps=c)):
        a = make(False).sample(oracle, x_T.shape, noise=x_T, progress=False).numpy()
        b = make(True).sample(oracle, x_T.shape, noise=x_T, progress=False).numpy()
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_xprev_mean_is_the_network_output_with_clipping():
    """DDPM sec. 3.2 / Ho's p_mean_variance: an xprev model's output is the mean of
    p(x_{t-1} | x_t); clip_denoised clips only the x0 derived from it."""
    d = GaussianDiffusion(get_beta_schedule("linear", 100, 1e-3, 0.2), "xprev", "fixed_small")
    rng = np.random.default_rng(2)
    x = paddle.to_tensor(rng.standard_normal((3, 2, 4, 4)).astype(np.float32))
    out_np = (3.0 * rng.standard_normal((3, 2, 4, 4))).astype(np.float32)
    model = lambda x_, t_: paddle.to_tensor(out_np)
    t = paddle.full([3], 50, "int64")
    for clip in (True, False):
        out = d.p_mean_variance(model, x, t, clip_denoised=clip)
        np.testing.assert_array_equal(out["mean"].numpy(), out_np)
        raw = d.predict_x0_from_xprev(x, t, paddle.to_tensor(out_np)).numpy()
        want = np.clip(raw, -1, 1) if clip else raw
        assert (np.abs(raw) > 1).any()
        np.testing.assert_allclose(out["pred_x0"].numpy(), want, rtol=1e-6, atol=1e-6)
    # ancestral sampling: x_{t-1} = network output + sigma_t z
    z = paddle.to_tensor(rng.standard_normal((3, 2, 4, 4)).astype(np.float32))
    x_prev, _ = DDPMSampler(d, clip_denoised=True).step(model, x, 50, 49, z)
    sigma = np.sqrt(d.posterior_variance[50])
    np.testing.assert_allclose(x_prev.numpy(), out_np + sigma * z.numpy(), atol=1e-5)
