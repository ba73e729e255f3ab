"""KL, discretized likelihood and training losses against numerical integration and closed forms."""
import math

import numpy as np
import paddle
import pytest
from scipy import integrate, stats

from ppddpm import GaussianDiffusion, get_beta_schedule
from ppddpm.diffusion.losses import (discretized_gaussian_log_likelihood, normal_kl, prior_bpd,
                           training_losses, vb_terms_bpd)

BETAS = get_beta_schedule("linear", 1000)


def tensor(a, dtype="float32"):
    return paddle.to_tensor(np.asarray(a, dtype=dtype))


@pytest.mark.parametrize("m1,lv1,m2,lv2", [(0.0, 0.0, 0.0, 0.0), (0.5, -1.0, -0.2, 0.3), (2.0, 1.0, 0.0, -2.0)])
def test_normal_kl_matches_integration(m1, lv1, m2, lv2):
    p, q = stats.norm(m1, math.exp(lv1 / 2)), stats.norm(m2, math.exp(lv2 / 2))
    expected, _ = integrate.quad(lambda x: p.pdf(x) * (p.logpdf(x) - q.logpdf(x)), -40, 40, limit=200)
    got = float(normal_kl(tensor(m1), tensor(lv1), tensor(m2), tensor(lv2)))
    assert got == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_discretized_loglik_matches_integration_and_normalises():
    mean, log_scale = 0.1, math.log(0.3)
    grid = np.linspace(-1, 1, 256)
    ll = discretized_gaussian_log_likelihood(tensor(grid), tensor(np.full(256, mean)),
                                             tensor(np.full(256, log_scale))).numpy()
    dist = stats.norm(mean, 0.3)
    for i in (0, 100, 128, 255):
        lo = -np.inf if i == 0 else grid[i] - 1 / 255
        hi = np.inf if i == 255 else grid[i] + 1 / 255
        mass, _ = integrate.quad(dist.pdf, lo, hi)
        assert ll[i] == pytest.approx(math.log(mass), rel=1e-4, abs=1e-5)
    assert np.exp(ll.astype(np.float64)).sum() == pytest.approx(1.0, abs=1e-4)


def test_bpd_loop_closed_form_for_a_perfect_x0_model():
    # A model that returns the true x_0 makes every KL term (t > 0) zero; L_0 and L_T are closed form.
    d = GaussianDiffusion(BETAS, "x0", "fixed_small")
    x0 = tensor(np.random.default_rng(0).integers(0, 256, size=(2, 1, 2, 2)) / 127.5 - 1)
    out = d.calc_bpd_loop(lambda x, t: x0, x0, clip_denoised=False)
    vb = out["vb"].numpy()
    assert vb.shape == (2, 1000)
    np.testing.assert_allclose(vb[:, 1:], 0, atol=1e-3)
    sigma = math.sqrt(d.posterior_variance[1])  # fixed_small log-variance at t=0 is clipped to beta-tilde_1
    xs = x0.numpy()
    inner = -math.log2(2 * stats.norm.cdf(1 / 255 / sigma) - 1)
    edge = -math.log2(stats.norm.cdf(1 / 255 / sigma))  # an outer bin keeps the whole tail
    l0 = np.where(np.abs(xs) > 0.999, edge, inner).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(vb[:, 0], l0, rtol=1e-3)
    abar_T = np.prod(1 - BETAS)
    kl_T = 0.5 * (-1 - np.log(1 - abar_T) + (1 - abar_T) + abar_T * xs ** 2) / math.log(2)
    np.testing.assert_allclose(out["prior_bpd"].numpy(), kl_T.mean(axis=(1, 2, 3)), rtol=1e-3, atol=1e-7)
    np.testing.assert_allclose(out["total_bpd"].numpy(), vb.sum(1) + out["prior_bpd"].numpy(), rtol=1e-5)


def test_mse_targets_per_mean_type():
    rng = np.random.default_rng(1)
    x0 = tensor(rng.uniform(-1, 1, size=(3, 2, 2, 2)))
    noise = tensor(rng.normal(size=(3, 2, 2, 2)))
    t = tensor([0, 10, 999], "int64")
    for mean_type in ("eps", "x0", "xprev"):
        d = GaussianDiffusion(BETAS, mean_type, "fixed_large")
        xt = d.q_sample(x0, t, noise)
        target = {"eps": noise, "x0": x0, "xprev": d.q_posterior_mean_variance(x0, xt, t)[0]}[mean_type]
        perfect = training_losses(d, lambda x, tt: target, x0, t, noise=noise)
        np.testing.assert_allclose(perfect["loss"].numpy(), 0, atol=1e-10)
        off = training_losses(d, lambda x, tt: target + 0.5, x0, t, noise=noise)
        np.testing.assert_allclose(off["loss"].numpy(), 0.25, rtol=1e-5)


def test_kl_loss_equals_vb_term():
    d = GaussianDiffusion(BETAS, "eps", "fixed_small", "kl")
    rng = np.random.default_rng(2)
    x0 = tensor(rng.uniform(-1, 1, size=(2, 1, 2, 2)))
    noise = tensor(rng.normal(size=(2, 1, 2, 2)))
    t = tensor([0, 500], "int64")
    model = lambda x, tt: x * 0.1
    loss = training_losses(d, model, x0, t, noise=noise)["loss"]
    xt = d.q_sample(x0, t, noise)
    expected = vb_terms_bpd(d, model, x0, xt, t, clip_denoised=False)["output"]
    np.testing.assert_allclose(loss.numpy(), expected.numpy(), rtol=1e-6)


def test_hybrid_stops_the_mean_gradient_in_the_vlb():
    d = GaussianDiffusion(get_beta_schedule("linear", 200), "eps", "learned_range", "hybrid")
    mean_p = paddle.create_parameter([2, 1, 2, 2], "float32")
    var_p = paddle.create_parameter([2, 1, 2, 2], "float32")
    mean_p.set_value(paddle.full([2, 1, 2, 2], 0.3)); var_p.set_value(paddle.full([2, 1, 2, 2], 0.1))
    model = lambda x, tt: paddle.concat([mean_p, var_p], axis=1)
    x0 = tensor(np.full((2, 1, 2, 2), 0.2))
    t = tensor([3, 150], "int64")
    terms = training_losses(d, model, x0, t, noise=tensor(np.ones((2, 1, 2, 2))))
    terms["vb"].sum().backward()
    assert mean_p.grad is None or float(paddle.abs(mean_p.grad).max()) == 0.0
    assert float(paddle.abs(var_p.grad).max()) > 0
    # loss = mse + (T * 0.001) * vb_t, i.e. L_simple + lambda * L_vlb in expectation (eq. 16).
    xt = d.q_sample(x0, t, tensor(np.ones((2, 1, 2, 2))))
    raw = vb_terms_bpd(d, model, x0, xt, t, clip_denoised=False)["output"]
    np.testing.assert_allclose(terms["vb"].numpy(), raw.numpy() * 0.2, rtol=1e-5)  # T = 200
    np.testing.assert_allclose(terms["loss"].numpy(), (terms["mse"] + terms["vb"]).numpy(), rtol=1e-6)


def test_hybrid_without_learned_variance_is_an_error():
    d = GaussianDiffusion(BETAS, "eps", "fixed_small", "hybrid")
    with pytest.raises(ValueError, match="learned variance"):
        training_losses(d, lambda x, t: x, tensor(np.zeros((1, 1, 2, 2))), tensor([1], "int64"))


def test_prior_bpd_small_for_long_chain():
    d = GaussianDiffusion(BETAS)
    assert float(prior_bpd(d, tensor(np.zeros((1, 3, 4, 4)))).max()) < 1e-4
