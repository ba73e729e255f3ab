"""Classifier guidance (samplers/classifier_guidance.py) against closed forms.

Data N(mu, s^2 I) has the exact noise predictor of samplers/oracles.py, eps*(x, t) =
sqrt(1 - ab)(x - sqrt(ab) mu) / v with v = ab s^2 + 1 - ab (ab = alpha-bar_t), affine in x.
The test classifier has log p(0 | x_t) = g_t . x_t + const: linear in x_t, so
grad log p(0 | x_t) = g_t exactly. (It is a two-class softmax with logits [g_t . x - 40, 0]:
log p(0 | x) = l - log(1 + e^l) with l < -30 where the samples go, linear to 1e-13; class 1
has log p ~ 0, no pull.) Every sampler is then affine in x, and:

* Alg. 2 (DDIM, the ODE solvers), with g_t = sqrt(ab) delta / (scale v): the guided eps
  eps* - sqrt(1 - ab) scale g_t = sqrt(1 - ab)(x - sqrt(ab)(mu + delta)) / v is exactly the
  noise predictor of the data N(mu + delta, s^2 I). The guided run equals the unguided run of
  the shifted data from the same noise, and its mean moves by delta.
* Alg. 1 (DDPM), any g_t: with the same noise, guided minus unguided samples is a fixed
  vector d, d_{t-1} = A_t d_t + Sigma_t scale g_t (d_T = 0), where A_t is the slope of the
  posterior mean in x_t: coef1 sqrt(ab) s^2 / v + coef2 (DDPM eqs. 7 and 11, x0 = E[x0|x_t]).
  With the g_t above and Sigma = beta_t, d_0 -> delta as the steps get small (Alg. 1 is a
  first-order expansion of the tilted posterior); at T = 1000 it is within 1%.
* DDIM with a constant g: d_{t'} = A d_t + B scale g with A = sqrt(ab') sqrt(ab) s^2 / v +
  sqrt(1 - ab') sqrt(1 - ab) / v and B = sqrt(ab')(1 - ab) / sqrt(ab) - sqrt(1 - ab')
  sqrt(1 - ab) (eq. 12, eta 0).

The diffusion "network" is the numpy oracle, which has no autograd at all, as an exported
engine: the gradient comes through the classifier only.
"""
import numpy as np
import paddle
import pytest

from ppddpm.diffusion import GaussianDiffusion
from ppddpm.diffusion.respace import respace
from ppddpm.diffusion.schedules import get_beta_schedule
from ppddpm.samplers import (DDIMSampler, DDPMSampler, DPMSolverPPSampler, DPMSolverSampler,
                             UniPCSampler)
from ppddpm.samplers.classifier_guidance import ClassifierGuidance, guided_model
from ppddpm.samplers.oracles import GaussianMixtureOracle

MU = np.array([0.4, -0.3])
STD = 0.5
DELTA = np.array([0.3, 0.25])
SHAPE = [2, 1, 1]


class LinearLogProbClassifier(paddle.nn.Layer):
    """logits [g_t . x - 40, 0] for a table g [T, D] at the original timesteps t."""
    num_classes = 2

    def __init__(self, g_table):
        super().__init__()
        self.g = paddle.to_tensor(np.asarray(g_table, dtype=np.float32))
        self.seen_t = []

    def forward(self, x, t):
        self.seen_t.append(t.numpy().copy())
        n = x.shape[0]
        g = paddle.gather(self.g, t)
        logit = (g * x.reshape([n, -1])).sum(axis=1) - 40.0
        return paddle.stack([logit, paddle.zeros_like(logit)], axis=1)


def diffusion(T=1000, var_type="fixed_large"):
    return GaussianDiffusion(get_beta_schedule("linear", T, 1e-4, 0.02 * 1000 / T), var_type=var_type)


def consistent_g(abar, scale):
    """g_t = sqrt(ab) delta / (scale v): the tilt that shifts every marginal by sqrt(ab) delta."""
    v = abar * STD ** 2 + 1 - abar
    return (np.sqrt(abar) / (scale * v))[:, None] * DELTA[None]


def run(sampler, model, n, classifier=None, y=None, seed=0):
    x = sampler.sample(model, [n] + SHAPE, seed=seed, progress=False, y=y, classifier=classifier)
    return x.numpy().reshape(n, -1).astype(np.float64)


def oracle(diff, mean=MU):
    return GaussianMixtureOracle(mean, STD, diff.alphas_cumprod)


def ddpm_shift(diff, g_orig, scale):
    """d_0 of Alg. 1 by the recursion of the module docstring (float64); ``g_orig`` is g at
    the original timesteps, the respaced chain reads it through its timestep_map."""
    ab = diff.alphas_cumprod
    var = np.exp(diff.fixed_large_log_variance) if diff.var_type.value == "fixed_large" \
        else np.exp(diff.posterior_log_variance_clipped)
    d = np.zeros(2)
    for t in range(diff.num_timesteps - 1, -1, -1):
        v = ab[t] * STD ** 2 + 1 - ab[t]
        slope = diff.posterior_mean_coef1[t] * np.sqrt(ab[t]) * STD ** 2 / v + \
            diff.posterior_mean_coef2[t]
        d = slope * d + var[t] * scale * g_orig[diff.timestep_map[t]]
    return d


@pytest.mark.parametrize("var_type", ["fixed_large", "fixed_small"])
def test_ddpm_moves_every_sample_by_the_recursion_and_the_mean_by_delta(var_type):
    diff = diffusion(var_type=var_type)
    scale = 2.0
    g = consistent_g(diff.alphas_cumprod, scale)
    n = 2000
    sampler = DDPMSampler(diff, clip_denoised=False)
    y = np.zeros(n, dtype=np.int64)
    y[::4] = 1                                   # a quarter asks for class 1: no pull
    plain = run(sampler, oracle(diff), n)
    guided = run(sampler, oracle(diff), n, ClassifierGuidance(LinearLogProbClassifier(g), scale), y)
    d = ddpm_shift(diff, g, scale)
    pulled = y == 0
    np.testing.assert_allclose(guided[pulled] - plain[pulled], np.broadcast_to(d, (pulled.sum(), 2)),
                               rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(guided[~pulled], plain[~pulled], atol=1e-6)
    if var_type == "fixed_large":
        # Alg. 1 with Sigma = beta_t is the first-order expansion of the shifted data's
        # posterior mean shift beta_t sqrt(ab_{t-1}) delta / v: d -> delta. (fixed_small's
        # Sigma = beta-tilde_t is smaller at small t and pulls ~2% less: the recursion above
        # is still exact.)
        np.testing.assert_allclose(d, DELTA, rtol=0.01)
    # ... so the guided samples' mean is mu + d, within 4 standard errors
    se = STD / np.sqrt(pulled.sum())
    assert np.all(np.abs(guided[pulled].mean(0) - (MU + d)) < 4 * se)


def test_ddpm_on_a_respaced_chain_gives_the_classifier_the_original_timesteps():
    full = diffusion()
    diff = respace(full, "25")
    scale = 1.0
    g = consistent_g(full.alphas_cumprod, scale) * np.linspace(0.5, 1.5, 1000)[:, None]
    clf = LinearLogProbClassifier(g)
    sampler = DDPMSampler(diff, clip_denoised=False)
    n = 8
    plain = run(sampler, oracle(full), n)
    guided = run(sampler, oracle(full), n, ClassifierGuidance(clf, scale), np.zeros(n, np.int64))
    np.testing.assert_allclose(guided - plain, np.broadcast_to(ddpm_shift(diff, g, scale), (n, 2)),
                               rtol=1e-4, atol=1e-5)
    assert sorted({int(t[0]) for t in clf.seen_t}) == sorted(diff.timestep_map.tolist())


def ddim_shift(diff, seq, g, scale):
    ab = np.append(1.0, diff.alphas_cumprod)       # index t + 1, ab[-1] = 1
    d = np.zeros(2)
    for t, t_prev in zip(seq[::-1], ([-1] + seq[:-1])[::-1]):
        a, a_p = ab[t + 1], ab[t_prev + 1]
        v = a * STD ** 2 + 1 - a
        A = np.sqrt(a_p) * np.sqrt(a) * STD ** 2 / v + np.sqrt(1 - a_p) * np.sqrt(1 - a) / v
        B = np.sqrt(a_p) * (1 - a) / np.sqrt(a) - np.sqrt(1 - a_p) * np.sqrt(1 - a)
        d = A * d + B * scale * g[t]
    return d


def test_ddim_moves_every_sample_by_the_recursion_for_a_constant_gradient():
    diff = diffusion()
    scale, n = 3.0, 16
    g = np.broadcast_to(np.array([0.2, -0.1]), (1000, 2))
    sampler = DDIMSampler(diff, num_steps=50, clip_denoised=False)
    plain = run(sampler, oracle(diff), n)
    guided = run(sampler, oracle(diff), n, ClassifierGuidance(LinearLogProbClassifier(g), scale),
                 np.zeros(n, np.int64))
    seq = [t for t, _ in sampler.steps][::-1]
    np.testing.assert_allclose(guided - plain, np.broadcast_to(ddim_shift(diff, seq, g, scale), (n, 2)),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("make", [
    lambda d: DDIMSampler(d, num_steps=50, clip_denoised=False),
    lambda d: DDIMSampler(d, num_steps=50, eta=1.0, clip_denoised=False),
    lambda d: DPMSolverPPSampler(d, num_steps=20, spacing="logsnr", order=2, clip_denoised=False),
    lambda d: DPMSolverSampler(d, num_steps=20, spacing="logsnr", order=3, clip_denoised=False),
    lambda d: UniPCSampler(d, num_steps=10, spacing="logsnr", order=2, clip_denoised=False),
], ids=["ddim", "ddim_eta1", "dpm_solver++2", "dpm_solver3", "unipc2"])
def test_alg2_guided_run_is_the_run_of_the_shifted_data(make):
    diff = diffusion()
    sampler = make(diff)
    scale, n = 2.0, 500
    clf = LinearLogProbClassifier(consistent_g(diff.alphas_cumprod, scale))
    guided = run(sampler, oracle(diff), n, ClassifierGuidance(clf, scale), np.zeros(n, np.int64))
    shifted = run(sampler, oracle(diff, MU + DELTA), n)
    np.testing.assert_allclose(guided, shifted, rtol=1e-4, atol=2e-5)
    plain = run(sampler, oracle(diff), n)
    # the mean moves by delta, up to the sampler's own discretisation at these few steps
    # (the exact equality above is the test; DDIM at 50 steps is 0.4% short)
    np.testing.assert_allclose(guided.mean(0) - plain.mean(0), DELTA, rtol=1e-2)


def test_scale_zero_is_the_unguided_sampler():
    diff = diffusion(T=100)
    sampler = DDIMSampler(diff, num_steps=10, clip_denoised=False)
    clf = LinearLogProbClassifier(consistent_g(diff.alphas_cumprod, 1.0))
    guided = run(sampler, oracle(diff), 4, ClassifierGuidance(clf, 0.0), np.zeros(4, np.int64))
    np.testing.assert_array_equal(guided, run(sampler, oracle(diff), 4))


class Recorder:
    """A conditional or unconditional network that records the labels it is given."""

    def __init__(self, num_classes=None):
        if num_classes is not None:
            self.num_classes = num_classes
        self.labels = []

    def __call__(self, x, t, y=None):
        self.labels.append(None if y is None else y.numpy().tolist())
        return paddle.zeros_like(x)


def test_labels_go_to_a_conditional_network_and_not_to_an_unconditional_one():
    clf = ClassifierGuidance(LinearLogProbClassifier(np.zeros((10, 2))), 1.0)
    x, t = paddle.zeros([3, 2, 1, 1]), paddle.zeros([3], "int64")
    cond, uncond = Recorder(num_classes=2), Recorder()
    guided_model(cond, [0, 1, 1], classifier=clf)(x, t)
    guided_model(uncond, [0, 1, 1], classifier=clf)(x, t)
    assert cond.labels == [[0, 1, 1]] and uncond.labels == [None]
    with pytest.raises(ValueError, match="needs the class labels"):
        guided_model(uncond, None, classifier=clf)


def test_a_classifier_must_return_logits_per_image():
    class Images(paddle.nn.Layer):
        def forward(self, x, t):
            return x
    guide = guided_model(Recorder(), [0, 0], classifier=ClassifierGuidance(Images(), 1.0))
    with pytest.raises(ValueError, match=r"logits \[N, classes\]"):
        guide.classifier_gradient(paddle.zeros([2, 3, 4, 4]), paddle.zeros([2], "int64"))
    with pytest.raises(TypeError, match="paddle.nn.Layer"):
        ClassifierGuidance(lambda x, t: x, 1.0)


class MeanClassifier(paddle.nn.Layer):
    """logits_k = 10 k mean(x) + t / 1000 (a nonlinear log p, through a real autograd graph)."""
    num_classes = 3

    def forward(self, x, t):
        m = x.reshape([x.shape[0], -1]).mean(axis=1, keepdim=True)
        return 10.0 * paddle.tanh(m) * paddle.arange(3, dtype="float32")[None] + \
            t.astype("float32")[:, None] / 1000.0


def test_the_network_may_run_on_the_exported_predictor(tmp_path, monkeypatch):
    """The same guided run with the dynamic-graph network and its Paddle Inference export
    (which has no autograd): the classifier's gradient is all that guidance needs."""
    from ppddpm.config import ModelConfig
    from ppddpm.engines import make_engine
    from ppddpm.engines.cache import CACHE_ENV
    from ppddpm.models import build_model
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    paddle.seed(3)
    net = build_model(ModelConfig(arch="unet", ch=32, ch_mult=[1, 2], num_res_blocks=1,
                                  attn_resolutions=[], dropout=0.0, resolution=8))
    for p in net.parameters():   # non-zero output layers
        p.set_value(paddle.randn(p.shape) * 0.05)
    net.eval()
    engine = make_engine(net, "inference", image_shape=[3, 8, 8])
    assert not isinstance(engine, paddle.nn.Layer)
    diff = diffusion(T=50)
    guide = ClassifierGuidance(MeanClassifier(), 5.0)
    y = np.array([0, 2, 1], dtype=np.int64)
    for sampler in (DDPMSampler(diff), DDIMSampler(diff, num_steps=5)):
        got = sampler.sample(engine, [3, 3, 8, 8], seed=1, progress=False, y=y, classifier=guide)
        want = sampler.sample(net, [3, 3, 8, 8], seed=1, progress=False, y=y, classifier=guide)
        plain = sampler.sample(net, [3, 3, 8, 8], seed=1, progress=False)
        assert np.abs(want.numpy() - plain.numpy()).max() > 0.05   # guidance changed the run
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)
