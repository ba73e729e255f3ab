"""GaussianDiffusion's closed forms against independent computations."""
import numpy as np
import paddle
import pytest

from ppddpm import GaussianDiffusion, get_beta_schedule

BETAS = get_beta_schedule("linear", 1000)


def tensor(a, dtype="float32"):
    return paddle.to_tensor(np.asarray(a, dtype=dtype))


@pytest.fixture
def diffusion():
    return GaussianDiffusion(BETAS, "eps", "fixed_small")


def test_posterior_matches_bayes_rule(diffusion):
    # q(x_{t-1}|x_t,x_0) ∝ q(x_t|x_{t-1}) q(x_{t-1}|x_0): a product of two Gaussians in x_{t-1}.
    rng = np.random.default_rng(0)
    t = np.array([1, 5, 100, 500, 999])
    x0, xt = rng.normal(size=(5, 1, 2, 2)), rng.normal(size=(5, 1, 2, 2))
    alpha = 1 - BETAS[t]
    abar_prev = np.cumprod(1 - BETAS)[t - 1]
    prec = alpha / BETAS[t] + 1 / (1 - abar_prev)
    var = 1 / prec
    mean = var[:, None, None, None] * (np.sqrt(alpha)[:, None, None, None] * xt / BETAS[t][:, None, None, None]
                                      + np.sqrt(abar_prev)[:, None, None, None] * x0
                                      / (1 - abar_prev)[:, None, None, None])
    m, v, logv = diffusion.q_posterior_mean_variance(tensor(x0), tensor(xt), tensor(t, "int64"))
    np.testing.assert_allclose(m.numpy(), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v.numpy()[:, 0, 0, 0], var, rtol=1e-5)
    np.testing.assert_allclose(logv.numpy()[:, 0, 0, 0], np.log(var), rtol=1e-5)


def test_posterior_log_variance_clipped_at_t0(diffusion):
    assert diffusion.posterior_variance[0] == 0
    assert diffusion.posterior_log_variance_clipped[0] == np.log(diffusion.posterior_variance[1])


def test_q_mean_variance(diffusion):
    x0 = tensor(np.ones((2, 1, 1, 1)))
    t = tensor([0, 999], "int64")
    mean, var, logvar = diffusion.q_mean_variance(x0, t)
    abar = np.cumprod(1 - BETAS)[[0, 999]]
    np.testing.assert_allclose(mean.numpy().ravel(), np.sqrt(abar), rtol=1e-6)
    np.testing.assert_allclose(var.numpy().ravel(), 1 - abar, rtol=1e-6)
    np.testing.assert_allclose(logvar.numpy().ravel(), np.log(1 - abar), rtol=1e-6)


def test_predict_x0_from_eps_inverts_q_sample(diffusion):
    rng = np.random.default_rng(1)
    x0 = tensor(rng.uniform(-1, 1, size=(6, 3, 4, 4)))
    noise = tensor(rng.normal(size=(6, 3, 4, 4)))
    t = tensor([0, 1, 10, 300, 700, 999], "int64")
    xt = diffusion.q_sample(x0, t, noise=noise)
    # float32 round-off is amplified by 1/sqrt(abar_t) (up to 158 at t = 999).
    np.testing.assert_allclose(diffusion.predict_x0_from_eps(xt, t, noise).numpy(), x0.numpy(), atol=2e-4)
    np.testing.assert_allclose(diffusion.predict_eps_from_x0(xt, t, x0).numpy(), noise.numpy(), atol=1e-4)


def test_predict_x0_from_xprev_inverts_posterior_mean(diffusion):
    rng = np.random.default_rng(2)
    x0, xt = tensor(rng.normal(size=(3, 1, 2, 2))), tensor(rng.normal(size=(3, 1, 2, 2)))
    t = tensor([1, 50, 999], "int64")
    mean, _, _ = diffusion.q_posterior_mean_variance(x0, xt, t)
    got = diffusion.predict_x0_from_xprev(xt, t, mean).numpy()
    # Dividing by coef1 (1.3e-4 at t = 999) amplifies float32 round-off of the numerator.
    c1 = diffusion.posterior_mean_coef1[t.numpy()][:, None, None, None]
    c2 = diffusion.posterior_mean_coef2[t.numpy()][:, None, None, None]
    bound = 8 * 2.0 ** -24 * (np.abs(mean.numpy()) + c2 * np.abs(xt.numpy())) / c1
    assert np.all(np.abs(got - x0.numpy()) <= bound + 1e-6)


@pytest.mark.parametrize("mean_type", ["eps", "x0", "xprev"])
def test_p_mean_variance_perfect_predictions_give_true_posterior(mean_type):
    d = GaussianDiffusion(BETAS, mean_type, "fixed_small")
    rng = np.random.default_rng(3)
    x0 = tensor(rng.uniform(-0.9, 0.9, size=(4, 2, 3, 3)))
    noise = tensor(rng.normal(size=(4, 2, 3, 3)))
    t = tensor([1, 10, 400, 999], "int64")
    xt = d.q_sample(x0, t, noise)
    true_mean = d.q_posterior_mean_variance(x0, xt, t)[0]
    target = {"eps": noise, "x0": x0, "xprev": true_mean}[mean_type]
    out = d.p_mean_variance(lambda x, tt: target, xt, t, clip_denoised=False)
    np.testing.assert_allclose(out["mean"].numpy(), true_mean.numpy(), atol=5e-4)
    np.testing.assert_allclose(out["pred_x0"].numpy(), x0.numpy(), atol=5e-3)


def test_variance_types():
    rng = np.random.default_rng(4)
    x = tensor(rng.normal(size=(3, 2, 2, 2)))
    t = tensor([0, 1, 999], "int64")
    post = GaussianDiffusion(BETAS).posterior_variance
    small = GaussianDiffusion(BETAS, "eps", "fixed_small").p_mean_variance(
        lambda x, t: x * 0, x, t)["variance"].numpy()[:, 0, 0, 0]
    np.testing.assert_allclose(small, [post[1], post[1], post[999]], rtol=1e-5)
    large = GaussianDiffusion(BETAS, "eps", "fixed_large").p_mean_variance(
        lambda x, t: x * 0, x, t)["variance"].numpy()[:, 0, 0, 0]
    # beta_t, with the first entry replaced by the posterior variance beta-tilde_1.
    np.testing.assert_allclose(large, [post[1], BETAS[1], BETAS[999]], rtol=1e-5)
    learned = GaussianDiffusion(BETAS, "eps", "learned")
    out = learned.p_mean_variance(lambda x, t: paddle.concat([x * 0, x * 0 - 3.0], 1), x, t)
    np.testing.assert_allclose(out["log_variance"].numpy(), -3.0, rtol=1e-6)
    rng_d = GaussianDiffusion(BETAS, "eps", "learned_range")
    for v, expect in ((1.0, np.log(BETAS[[0, 1, 999]])),
                      (-1.0, np.log([post[1], post[1], post[999]]))):
        out = rng_d.p_mean_variance(lambda x, t: paddle.concat([x * 0, x * 0 + v], 1), x, t)
        np.testing.assert_allclose(out["log_variance"].numpy()[:, 0, 0, 0], expect, rtol=1e-5)
    # Halfway: the geometric mean of the two variances (eq. 15 interpolates logs).
    out = rng_d.p_mean_variance(lambda x, t: paddle.concat([x * 0, x * 0], 1), x, t)
    np.testing.assert_allclose(out["variance"].numpy()[2, 0, 0, 0], np.sqrt(BETAS[999] * post[999]), rtol=1e-5)


def test_channel_mismatch_is_clear():
    x = tensor(np.zeros((1, 3, 2, 2)))
    t = tensor([5], "int64")
    with pytest.raises(ValueError, match="6 output channels"):
        GaussianDiffusion(BETAS, "eps", "learned").p_mean_variance(lambda x, t: x, x, t)
    with pytest.raises(ValueError, match="learned"):
        GaussianDiffusion(BETAS).p_mean_variance(lambda x, t: paddle.concat([x, x], 1), x, t)


def test_clip_uses_model_data_range():
    class Legacy:
        data_range = (0.0, 1.0)

        def __call__(self, x, t):
            return x * 0 - 50.0
    d = GaussianDiffusion(BETAS, "x0", "fixed_small")
    x = tensor(np.zeros((1, 1, 2, 2)))
    out = d.p_mean_variance(Legacy(), x, tensor([3], "int64"))
    assert float(out["pred_x0"].min()) == 0.0


def test_unknown_enum_value_is_clear():
    with pytest.raises(ValueError, match="fixed_small"):
        GaussianDiffusion(BETAS, "eps", "fixed_medium")
