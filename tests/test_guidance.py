"""Classifier-free guidance (ppddpm.samplers.guidance) against its formula, eps = (1+w) eps(x, y) -
w eps(x, null): known functions, real networks in one batched call against two separate
calls, the predictor engine, and every sampler; and the label helpers (ppddpm.data.labels)."""
import numpy as np
import paddle
import pytest

from ppddpm.config import Config, ConfigError, ModelConfig, SampleConfig
from ppddpm.diffusion import GaussianDiffusion
from ppddpm.engines.predictor import InferenceModel
from ppddpm.samplers.guidance import Guided, with_labels
from ppddpm.data.labels import balanced_labels, grid_labels, parse_class_label, sampling_classes
from ppddpm.models import build_model
from ppddpm.diffusion.respace import respace
from ppddpm.samplers import DDIMSampler, DDPMSampler
from ppddpm.diffusion.schedules import get_beta_schedule

NULL = 4


class KnownModel:
    """Conditional output c(x, t, y) = (y + 1) x + t/10, unconditional u(x, t) = -x - t/100;
    with ``sigma`` the output also carries C variance channels, 0.1 (y + 1)."""
    num_classes = NULL

    def __init__(self, sigma=False):
        self.sigma, self.calls = sigma, []

    def __call__(self, x, t, y=None):
        self.calls.append(int(x.shape[0]))
        y = paddle.full([x.shape[0]], NULL, "int64") if y is None else y
        yy = y.astype("float32").reshape([-1, 1, 1, 1])
        tt = t.astype("float32").reshape([-1, 1, 1, 1])
        null = (yy == NULL).astype("float32")
        mean = null * (-x - tt / 100) + (1 - null) * ((yy + 1) * x + tt / 10)
        if not self.sigma:
            return mean
        return paddle.concat([mean, 0.1 * (yy + 1) * paddle.ones_like(x)], axis=1)


def batch(n=6, c=3, seed=0):
    rng = np.random.default_rng(seed)
    x = paddle.to_tensor(rng.standard_normal((n, c, 4, 4)).astype("float32"))
    t = paddle.to_tensor(rng.integers(0, 50, n).astype("int64"))
    y = paddle.to_tensor(rng.integers(0, NULL, n).astype("int64"))
    return x, t, y


@pytest.mark.parametrize("w", [0.5, 1.0, 3.0])
def test_guided_output_is_the_formula_in_one_batched_call(w):
    x, t, y = batch()
    model = KnownModel()
    got = Guided(model, w, NULL)(x, t, y).numpy()
    assert model.calls == [12]                      # conditional and unconditional halves together
    xn, tn, yn = x.numpy(), t.numpy()[:, None, None, None], y.numpy()[:, None, None, None]
    cond, uncond = (yn + 1) * xn + tn / 10, -xn - tn / 100
    np.testing.assert_allclose(got, (1 + w) * cond - w * uncond, rtol=1e-5, atol=1e-5)


def test_learned_variance_guides_only_the_mean_channels():
    x, t, y = batch()
    got = Guided(KnownModel(sigma=True), 2.0, NULL)(x, t, y).numpy()
    xn, tn, yn = x.numpy(), t.numpy()[:, None, None, None], y.numpy()[:, None, None, None]
    want_mean = 3 * ((yn + 1) * xn + tn / 10) - 2 * (-xn - tn / 100)
    np.testing.assert_allclose(got[:, :3], want_mean, rtol=1e-5, atol=1e-5)
    # the conditional variance channels, untouched (the null branch would give 0.5)
    np.testing.assert_array_equal(got[:, 3:], np.broadcast_to(0.1 * (yn + 1), xn.shape).astype("float32"))


def tiny_net(arch="mlp", learn_sigma=False):
    """A small conditional network on 3x8x8 inputs (the MLP where speed matters)."""
    cfg = ModelConfig(arch=arch, ch=16, ch_mult=[1, 2], num_res_blocks=1, attn_resolutions=[4],
                      dropout=0.0, resolution=8, num_classes=NULL, learn_sigma=learn_sigma,
                      norm_groups=8)
    paddle.seed(3)
    model = build_model(cfg)
    rng = np.random.default_rng(3)
    for p in model.parameters():   # non-zero output layers, label embedding perturbed
        p.set_value(p.numpy() + rng.normal(0, 0.05, p.shape).astype("float32"))
    model.eval()
    return model


@pytest.mark.parametrize("learn_sigma", [False, True])
def test_one_batched_call_equals_two_separate_calls_of_a_network(learn_sigma):
    model = tiny_net("unet", learn_sigma=learn_sigma)   # GroupNorm, attention: per-image ops
    x, t, y = batch(n=3, seed=1)
    x = paddle.to_tensor(np.random.default_rng(2).standard_normal((3, 3, 8, 8)).astype("float32"))
    with paddle.no_grad():
        got = Guided(model, 1.5, NULL)(x, t, y).numpy()
        cond = model(x, t, y).numpy()
        uncond = model(x, t, paddle.full([3], NULL, "int64")).numpy()
    assert np.abs(cond - uncond).max() > 1e-2      # the label changes the output
    np.testing.assert_allclose(got[:, :3], 2.5 * cond[:, :3] - 1.5 * uncond[:, :3], atol=2e-5)
    if learn_sigma:
        np.testing.assert_allclose(got[:, 3:], cond[:, 3:], atol=2e-5)


def test_guidance_zero_is_the_conditional_model_exactly():
    model = tiny_net("unet")
    x, t, y = batch(n=2)
    x = paddle.to_tensor(np.random.default_rng(4).standard_normal((2, 3, 8, 8)).astype("float32"))
    with paddle.no_grad():
        np.testing.assert_array_equal(Guided(model, 0.0, NULL)(x, t, y).numpy(), model(x, t, y).numpy())
    s = DDIMSampler(GaussianDiffusion(get_beta_schedule("linear", 20, 1e-4, 0.05)), num_steps=4, eta=1.0)
    a = s.sample(model, [2, 3, 8, 8], seed=5, y=y, guidance_scale=0.0, progress=False)
    b = s.sample(lambda x_, t_: model(x_, t_, y), [2, 3, 8, 8], seed=5, progress=False)
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def two_call_guided(model, y, w):
    """The guided network written out with two separate calls (independent of Guided)."""
    null = paddle.full([len(y)], NULL, "int64")
    return lambda x, t: (1 + w) * model(x, t, paddle.to_tensor(y)) - w * model(x, t, null)


# DDIM's eps form is fixed (clipped_eps=False): by default a guided run re-derives eps from
# the clipped x0 and an unguided one keeps the model's, and ``want`` below is unguided.
@pytest.mark.parametrize("make", [
    lambda d: DDPMSampler(d),
    lambda d: DDIMSampler(d, num_steps=5, eta=0.0, clipped_eps=False),
    lambda d: DDIMSampler(d, num_steps=5, eta=1.0, clipped_eps=False),
    lambda d: DDPMSampler(respace(d, "5")),
], ids=["ddpm", "ddim_eta0", "ddim_eta1", "respaced"])
def test_every_sampler_samples_the_guided_model(make):
    model = tiny_net()
    sampler = make(GaussianDiffusion(get_beta_schedule("linear", 20, 1e-4, 0.05)))
    y = np.array([0, 3, 1])
    got = sampler.sample(model, [3, 3, 8, 8], seed=7, y=y, guidance_scale=2.0, progress=False)
    want = sampler.sample(two_call_guided(model, y, 2.0), [3, 3, 8, 8], seed=7, progress=False)
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-4)
    plain = sampler.sample(model, [3, 3, 8, 8], seed=7, y=y, progress=False)
    assert np.abs(got.numpy() - plain.numpy()).max() > 1e-3   # guidance changed the samples


def test_the_predictor_engine_runs_both_halves_in_one_call(tmp_path):
    model = tiny_net()
    engine = InferenceModel(model, [3, 8, 8], cache_dir=str(tmp_path), threads=1)
    x = paddle.to_tensor(np.random.default_rng(6).standard_normal((3, 3, 8, 8)).astype("float32"))
    t, y = paddle.to_tensor(np.array([1, 10, 19])), paddle.to_tensor(np.array([2, 0, 3]))
    with paddle.no_grad():
        want = Guided(model, 1.0, NULL)(x, t, y).numpy()
    np.testing.assert_allclose(Guided(engine, 1.0, NULL)(x, t, y).numpy(), want, atol=1e-4, rtol=1e-3)


def test_labels_need_a_conditional_model_and_guidance_needs_labels():
    with pytest.raises(ValueError, match="without num_classes"):
        with_labels(lambda x, t: x, [0, 1])
    with pytest.raises(ValueError, match="needs class labels"):
        with_labels(KnownModel(), None, 1.0)
    assert with_labels(KnownModel(), [1, 2], 0.0).data_range == (-1.0, 1.0)


# -- labels.py --------------------------------------------------------------------
NAMES = ["airplane", "automobile", "bird"]


def test_class_label_by_name_index_list_and_all():
    assert parse_class_label("all", 3, NAMES) == [0, 1, 2]
    assert parse_class_label("bird", 3, NAMES) == [2]
    assert parse_class_label("1", 3, NAMES) == [1]
    assert parse_class_label("bird, 0", 3, NAMES) == [2, 0]
    assert parse_class_label("2", 3, None) == [2]
    for bad in ("cat", "3", "-1", ""):
        with pytest.raises(ConfigError, match="class"):
            parse_class_label(bad, 3, NAMES)


def test_grid_rows_per_class_and_balanced_eval_labels():
    # all on 100-10-10: row r is class r, 10 of each
    labels = grid_labels(list(range(10)), 100, 10, 10)
    assert labels.reshape(10, 10).tolist() == [[r] * 10 for r in range(10)]
    # two classes on 4 rows: two rows each, in order
    assert grid_labels([5, 2], 8, 4, 2).tolist() == [5, 5, 5, 5, 2, 2, 2, 2]
    with pytest.raises(ConfigError, match="multiple of 3"):
        grid_labels([0, 1, 2], 16, 4, 4)
    counts = np.bincount(balanced_labels([0, 1, 2], 1000), minlength=3)
    assert counts.max() - counts.min() <= 1
    # a contiguous share of the set has the labels of the whole set's indices
    np.testing.assert_array_equal(balanced_labels([0, 1, 2], 1000)[400:700],
                                  np.arange(400, 700) % 3)


def test_sampling_classes_refuses_an_unconditional_model_and_guidance_without_labels():
    cfg = Config()
    cfg.data.class_names = None
    with pytest.raises(ConfigError, match="trained without labels"):
        sampling_classes(SampleConfig(class_label="0"), cfg)
    with pytest.raises(ConfigError, match="needs --class_label"):
        sampling_classes(SampleConfig(guidance_scale=2.0), cfg)
    assert sampling_classes(SampleConfig(), cfg) is None
    cfg.model.num_classes, cfg.data.class_names = 3, NAMES
    assert sampling_classes(SampleConfig(class_label="automobile"), cfg) == [1]


def test_readme_conditional_example_runs():
    import os
    import re
    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "README.md"), encoding="utf-8") as fh:
        blocks = re.findall(r"```python\n(.*?)```", fh.read(), re.S)
    code = [b for b in blocks if "guidance_scale" in b]
    assert len(code) == 1
    namespace = {}
    exec(compile(code[0], "README.md", "exec"), namespace)
    assert namespace["images"].shape == [4, 3, 8, 8]
    assert float(namespace["images"].abs().max()) <= 1.0


def test_eval_generation_gives_image_i_its_label(tmp_path):
    from ppddpm.evaluate import generate_resumable
    from ppddpm.samplers.batched import generate
    model = tiny_net()
    sampler = DDIMSampler(GaussianDiffusion(get_beta_schedule("linear", 20, 1e-4, 0.05)), num_steps=3)
    labels = balanced_labels([0, 1, 2], 5)
    got = generate_resumable(model, sampler, 5, [3, 8, 8], 2, 0, str(tmp_path / "p"), {"t": 1},
                             progress=False, labels=labels, guidance_scale=1.0)
    one = generate(model, sampler, 5, [3, 8, 8], 2, progress=False, labels=labels, guidance_scale=1.0)
    np.testing.assert_array_equal(got, one)
    assert not np.array_equal(one, generate(model, sampler, 5, [3, 8, 8], 2, progress=False))


def test_sequence_frames_end_in_the_labelled_samples():
    from ppddpm.samplers.batched import generate, generate_sequence
    model = tiny_net()
    sampler = DDIMSampler(GaussianDiffusion(get_beta_schedule("linear", 20, 1e-4, 0.05)), num_steps=4)
    labels = [0, 2, 1]
    x0_frames, xt_frames = generate_sequence(model, sampler, 3, [3, 8, 8], 2, every=2,
                                             progress=False, labels=labels, guidance_scale=1.5)
    final = generate(model, sampler, 3, [3, 8, 8], 2, progress=False, labels=labels,
                     guidance_scale=1.5)
    assert len(xt_frames) == 2
    np.testing.assert_array_equal(xt_frames[-1], final)
