"""The adm network exported and run by both engines (Paddle Inference, ONNX Runtime): the
same outputs as the dynamic graph with labels, learned sigma and rescaled timesteps, and the
same DDPM samples (the learned variance goes through the engine's output)."""
import numpy as np
import paddle
import pytest

from ppddpm.config import Config, ModelConfig
from ppddpm.config.names import SAMPLERS
from ppddpm.diffusion import GaussianDiffusion
from ppddpm.diffusion.schedules import get_beta_schedule
from ppddpm.engines import InferenceModel
from ppddpm.engines import onnx as engine_onnx
from ppddpm.models import build_model
from ppddpm.samplers import DDPMSampler, build_sampler

SHAPE = [3, 16, 16]
T = 20


def tiny_adm(seed=0, **kw):
    """Every weight non-zero (upstream zero-initialises the output layers)."""
    cfg = ModelConfig(arch="adm", ch=32, ch_mult=[1, 2], num_res_blocks=1, resolution=16,
                      attn_resolutions=[16, 8], num_steps=T, dropout=0.1, norm_eps=1e-5,
                      learn_sigma=True, num_classes=3, use_scale_shift_norm=True,
                      rescale_timesteps=True, **kw)
    paddle.seed(seed)
    model = build_model(cfg)
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.set_value(p.numpy() + rng.normal(0, 0.05, p.shape).astype("float32"))
    model.eval()
    return model


VARIANTS = {"legacy_two_heads_resblock_updown": dict(num_heads=2, resblock_updown=True),
            "new_order_head_width": dict(num_head_channels=16, use_new_attention_order=True)}


def engines(model, cache):
    out = [InferenceModel(model, SHAPE, cache_dir=cache, threads=1)]
    if engine_onnx.available():
        out.append(engine_onnx.OnnxModel(model, SHAPE, cache_dir=cache, threads=1))
    return out


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_engines_match_the_dynamic_graph(variant, tmp_path):
    model = tiny_adm(**VARIANTS[variant])
    rng = np.random.default_rng(1)
    for eng in engines(model, str(tmp_path)):
        for n in (1, 3):
            x = paddle.to_tensor(rng.standard_normal([n] + SHAPE).astype("float32"))
            t = paddle.to_tensor(rng.integers(0, T, n))
            y = paddle.to_tensor(rng.integers(0, 4, n))    # 3 = "no label"
            want = model(x, t, y).numpy()
            assert want.shape == (n, 6, 16, 16) and np.abs(want).max() > 0.1
            np.testing.assert_allclose(eng(x, t, y).numpy(), want, atol=1e-4, rtol=1e-4)
            np.testing.assert_allclose(eng(x, t).numpy(), model(x, t).numpy(), atol=1e-4,
                                       rtol=1e-4)


def test_ddpm_with_learned_range_samples_the_same_on_the_engine(tmp_path):
    model = tiny_adm(seed=2, num_heads=2)
    eng = InferenceModel(model, SHAPE, cache_dir=str(tmp_path), threads=1)
    betas = get_beta_schedule("linear", T, 1e-4, 0.05)
    s = DDPMSampler(GaussianDiffusion(betas, var_type="learned_range"))
    y = paddle.to_tensor([0, 2])
    a = s.sample(eng, [2] + SHAPE, seed=3, progress=False, y=y).numpy()
    b = s.sample(model, [2] + SHAPE, seed=3, progress=False, y=y).numpy()
    assert a.std() > 0.1
    np.testing.assert_allclose(a, b, atol=1e-3)


@pytest.mark.parametrize("name", SAMPLERS)
def test_every_sampler_runs_the_adm_network_with_labels(name):
    """Learned sigma through the mean part (DDIM and the solvers take the first half)."""
    model = tiny_adm(seed=3, num_heads=2)
    betas = get_beta_schedule("linear", T, 1e-4, 0.05)
    cfg = Config().sample
    cfg.sampler, cfg.num_steps = name, 4
    sampler = build_sampler(GaussianDiffusion(betas, var_type="learned_range"), cfg)
    x = sampler.sample(model, [2] + SHAPE, seed=1, progress=False,
                       y=paddle.to_tensor([0, 2])).numpy()
    assert x.shape == (2, 3, 16, 16) and np.isfinite(x).all() and x.std() > 0.05


def test_classifier_gradient_wrt_x_in_eval_mode():
    """What classifier guidance takes: d log p(y | x_t) / dx by Paddle autograd, the weights
    trainable, the network in eval mode (the oneDNN convolutions' PyLayer cannot give dx
    alone, so eval mode with gradients runs Paddle's), equal to the Paddle backend's."""
    from ppddpm.models.conv import conv_backend, set_conv_backend
    cfg = ModelConfig(arch="adm_classifier", ch=32, ch_mult=[1, 2], num_res_blocks=1,
                      resolution=16, attn_resolutions=[8], num_classes=5, num_head_channels=16,
                      norm_eps=1e-5, use_scale_shift_norm=True, resblock_updown=True)
    paddle.seed(0)
    model = build_model(cfg)
    model.eval()
    x0 = paddle.randn([2, 3, 16, 16])

    def grad():
        x = x0.clone()
        x.stop_gradient = False
        logp = paddle.nn.functional.log_softmax(model(x, paddle.to_tensor([3, 7])), axis=-1)
        return paddle.grad(logp[:, 1].sum(), x)[0].numpy()
    got, before = grad(), conv_backend()
    set_conv_backend("paddle")
    try:
        want = grad()
    finally:
        set_conv_backend(before)
    assert np.abs(want).max() > 0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
