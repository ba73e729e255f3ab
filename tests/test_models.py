"""Networks: exact sizes, shapes, gradients, layer semantics, and export to the
Paddle Inference predictor with oneDNN."""
import math

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from ppddpm.config import ConfigError, ModelConfig
from ppddpm.models import build_model, count_parameters
from ppddpm.models.layers import (AttnBlock, Downsample, ResBlock, Upsample, sdpa_available,
                                  sinusoidal_table, timestep_embedding, upsample_nearest2x)


def small_cfg(arch, **kw):
    base = dict(arch=arch, ch=32, ch_mult=[1, 2], num_res_blocks=1, attn_resolutions=[8],
                dropout=0.1, resolution=16, num_steps=100)
    base.update(kw)
    return ModelConfig(**base)


def randomise(model, seed=0, scale=0.1):
    """Perturb every parameter (the zero-initialised ones too) so all paths carry signal."""
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.set_value(p.numpy() + scale * rng.standard_normal(p.shape).astype("float32"))
    return model


# ---- exact sizes -----------------------------------------------------------------

def test_unet_cifar10_has_exactly_35746307_parameters():
    model = build_model(ModelConfig(arch="unet", ch=128, ch_mult=[1, 2, 2, 2], num_res_blocks=2,
                                    attn_resolutions=[16], dropout=0.1, resolution=32))
    assert count_parameters(model) == 35_746_307


def test_unet_celebahq256_has_113673219_parameters():
    # diffusers' UNet2DModel in the google/ddpm-celebahq-256 layout has 113,673,219 too.
    with paddle.LazyGuard():   # shapes only, nothing allocated
        model = build_model(ModelConfig(arch="unet", ch=128, ch_mult=[1, 1, 2, 2, 4, 4],
                                        attn_resolutions=[16], resolution=256))
    assert count_parameters(model) == 113_673_219


def test_fpn_celebahq128_matches_the_original_size():
    # the original reproduction's FPN has 53,405,059 values (original_state_dict_keys.txt)
    with paddle.LazyGuard():
        model = build_model(ModelConfig(arch="fpn", ch=128, ch_mult=[1, 1, 2, 2, 4, 4],
                                        attn_resolutions=[], resolution=128, num_steps=1000))
    assert count_parameters(model) == 53_405_059


# ---- shapes, labels, gradients ---------------------------------------------------

@pytest.mark.parametrize("arch", ["unet", "fpn"])
@pytest.mark.parametrize("learn_sigma,num_classes", [(False, None), (True, None), (True, 10)])
def test_output_shapes(arch, learn_sigma, num_classes):
    model = build_model(small_cfg(arch, learn_sigma=learn_sigma, num_classes=num_classes,
                                  in_channels=1, out_channels=1))
    model.eval()
    x = paddle.randn([3, 1, 16, 16])
    t = paddle.to_tensor([0, 5, 99], dtype="int64")
    want = [3, 2 if learn_sigma else 1, 16, 16]
    assert model(x, t).shape == want
    if num_classes:
        randomise(model)
        y = paddle.to_tensor([0, 9, 10], dtype="int64")        # 10 = "no label"
        assert model(x, t, y).shape == want
        null = model(x, t, paddle.full([3], 10, dtype="int64")).numpy()
        np.testing.assert_allclose(model(x, t).numpy(), null, atol=1e-6)   # y=None -> no label
        assert np.abs(model(x, t, y).numpy() - null).max() > 1e-3          # labels matter
    else:
        with pytest.raises(ValueError, match="num_classes"):
            model(x, t, paddle.to_tensor([0, 1, 2], dtype="int64"))


@pytest.mark.parametrize("arch", ["unet", "fpn"])
def test_forward_backward_reaches_every_parameter(arch):
    paddle.seed(0)
    model = randomise(build_model(small_cfg(arch, num_classes=4)))
    model.train()
    x = paddle.randn([2, 3, 16, 16])
    x.stop_gradient = False
    t = paddle.to_tensor([3, 77], dtype="int64")
    out = model(x, t, paddle.to_tensor([1, 4], dtype="int64"))
    assert out.shape == [2, 3, 16, 16]
    (out * paddle.randn(out.shape)).mean().backward()
    assert x.grad.shape == x.shape and float(x.grad.abs().max()) > 0
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert p.grad.shape == p.shape, name
        assert np.isfinite(p.grad.numpy()).all(), name
        assert float(p.grad.abs().max()) > 0, f"no gradient reaches {name}"


def test_dropout_is_elementwise_and_only_in_training():
    model = randomise(build_model(small_cfg("unet", dropout=0.5)))
    x, t = paddle.randn([1, 3, 16, 16]), paddle.to_tensor([10], dtype="int64")
    model.eval()
    np.testing.assert_array_equal(model(x, t).numpy(), model(x, t).numpy())
    drop = [l for l in model.sublayers() if type(l).__name__ == "Dropout"]
    assert drop and all(l.p == 0.5 for l in drop)
    assert not [l for l in model.sublayers() if "Dropout2D" in type(l).__name__]
    model.train()
    assert np.abs(model(x, t).numpy() - model(x, t).numpy()).max() > 1e-4


# ---- initialisation ----------------------------------------------------------------

def test_unet_zero_init_layers_and_zero_output_at_init():
    model = build_model(small_cfg("unet"))
    blocks = [l for l in model.sublayers() if isinstance(l, ResBlock)]
    attns = [l for l in model.sublayers() if isinstance(l, AttnBlock)]
    assert len(blocks) == 2 + 2 + 4 and len(attns) == 1 + 1 + 2   # down, mid, up
    for layer in [b.conv2 for b in blocks] + [a.proj_out for a in attns] + [model.conv_out]:
        assert not np.any(layer.weight.numpy()) and not np.any(layer.bias.numpy())
    for b in blocks:   # the other convs are not zero
        assert np.abs(b.conv1.weight.numpy()).max() > 0
    model.eval()
    out = model(paddle.randn([2, 3, 16, 16]), paddle.to_tensor([1, 50], dtype="int64"))
    assert not np.any(out.numpy())


def test_fpn_time_table_is_the_ddpm_sinusoid_in_timestep_order():
    model = build_model(small_cfg("fpn", num_steps=50))
    table = model.time_table.weight.numpy()
    t = np.arange(50)[:, None]
    freqs = np.exp(-math.log(10000) * np.arange(16) / 15)
    np.testing.assert_allclose(table[:, :16], np.sin(t * freqs), atol=2e-5)
    np.testing.assert_allclose(table[:, 16:], np.cos(t * freqs), atol=2e-5)
    assert not model.time_table.weight.stop_gradient     # trainable, as in Keras-DDPM
    assert not np.any(model.conv_out.weight.numpy())


# ---- layers -------------------------------------------------------------------------

def test_timestep_embedding_is_the_official_ddpm_formula():
    t = np.array([0, 1, 17, 500, 999])
    for dim in (8, 32, 33):
        emb = timestep_embedding(paddle.to_tensor(t, dtype="int64"), dim).numpy()
        half = dim // 2
        args = t[:, None] * np.exp(-math.log(10000) * np.arange(half) / (half - 1))
        want = np.concatenate([np.sin(args), np.cos(args)], axis=1)
        if dim % 2:
            want = np.concatenate([want, np.zeros((len(t), 1))], axis=1)
        assert emb.shape == (5, dim)
        np.testing.assert_allclose(emb, want, atol=2e-4)   # float32 args up to 999 rad
        np.testing.assert_allclose(sinusoidal_table(1000, dim)[t], emb, atol=1e-5)
    shifted = timestep_embedding(paddle.to_tensor(t, dtype="int64"), 8, freq_shift=0).numpy()
    args = t[:, None] * np.exp(-math.log(10000) * np.arange(4) / 4)   # diffusers' default
    np.testing.assert_allclose(shifted[:, :4], np.sin(args), atol=2e-4)


def _attention_numpy(block, x):
    """Independent reference: softmax(q k^T / sqrt(C)) v over H*W, plus the residual."""
    b, c, h, w = x.shape
    hn = block.norm(paddle.to_tensor(x)).numpy().reshape(b, c, h * w).transpose(0, 2, 1)
    qkv = hn @ block.qkv.weight.numpy() + block.qkv.bias.numpy()
    q, k, v = np.split(qkv, 3, axis=-1)
    s = q @ k.transpose(0, 2, 1) / math.sqrt(c)
    s = np.exp(s - s.max(-1, keepdims=True))
    a = (s / s.sum(-1, keepdims=True)) @ v
    out = a @ block.proj_out.weight.numpy() + block.proj_out.bias.numpy()
    return x + out.transpose(0, 2, 1).reshape(b, c, h, w)


def test_sdpa_attention_agrees_with_fallback_and_numpy():
    assert sdpa_available()       # on this CPU build the fused kernel runs
    paddle.seed(1)
    fused = randomise(AttnBlock(64, use_sdpa=True), scale=0.3)
    plain = AttnBlock(64, use_sdpa=False)
    plain.set_state_dict(fused.state_dict())
    x = np.random.default_rng(0).standard_normal((2, 64, 8, 8)).astype("float32")
    a, b = fused(paddle.to_tensor(x)).numpy(), plain(paddle.to_tensor(x)).numpy()
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(b, _attention_numpy(plain, x), atol=1e-4)
    assert np.abs(a - x).max() > 1e-2      # the attention did something


def test_upsample_is_nearest_interpolation():
    x = paddle.randn([2, 5, 4, 6])
    np.testing.assert_array_equal(upsample_nearest2x(x).numpy(),
                                  F.interpolate(x, scale_factor=2, mode="nearest").numpy())
    up = Upsample(5)
    np.testing.assert_allclose(up(x).numpy(),
                               up.conv(F.interpolate(x, scale_factor=2, mode="nearest")).numpy(),
                               atol=1e-6)


def test_downsample_pads_zero_before_and_one_after():
    down = Downsample(4)
    x = paddle.randn([1, 4, 8, 8])
    ref = F.conv2d(F.pad(x, [0, 1, 0, 1]), down.conv.weight, down.conv.bias, stride=2)
    assert down(x).shape == [1, 4, 4, 4]
    np.testing.assert_allclose(down(x).numpy(), ref.numpy(), atol=1e-6)


# ---- build_model dispatch -------------------------------------------------------------

def test_build_model_rejects_unknown_archs():
    with pytest.raises(ConfigError, match="'unet'.*'fpn'.*'legacy_unet'.*'legacy_fpn'"):
        build_model(ModelConfig(arch="transformer"))


@pytest.mark.parametrize("kw,match", [(dict(resolution=15), "divisible by 2"),
                                      (dict(ch=24), "norm_groups"),
                                      (dict(ch_mult=[]), "ch_mult")])
def test_bad_model_settings_are_config_errors(kw, match):
    for arch in ("unet", "fpn"):
        with pytest.raises(ConfigError, match=match):
            build_model(small_cfg(arch, **kw))


# ---- export -----------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["unet", "fpn"])
def test_export_runs_in_paddle_inference_with_onednn(arch, tmp_path):
    from paddle import inference
    from paddle.static import InputSpec
    paddle.seed(0)
    model = randomise(build_model(small_cfg(arch)))
    model.eval()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 16, 16)).astype("float32")
    t = np.array([3, 91], dtype="int64")
    ref = model(paddle.to_tensor(x), paddle.to_tensor(t)).numpy()
    path = str(tmp_path / "model")
    paddle.jit.save(model, path, input_spec=[InputSpec([None, 3, None, None], "float32", "x"),
                                             InputSpec([None], "int64", "t")])
    cfg = inference.Config(path + ".json", path + ".pdiparams")
    cfg.disable_gpu()
    cfg.enable_onednn()
    cfg.set_cpu_math_library_num_threads(1)
    pred = inference.create_predictor(cfg)
    pred.get_input_handle("x").copy_from_cpu(x)
    pred.get_input_handle("t").copy_from_cpu(t)
    pred.run()
    out = pred.get_output_handle(pred.get_output_names()[0]).copy_to_cpu()
    assert out.shape == ref.shape and np.abs(ref).max() > 0.1
    np.testing.assert_allclose(out, ref, atol=1e-4)
