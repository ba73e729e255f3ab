"""The original reproduction's networks: exact parameter layout, forward parity, loading."""
import os

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from helpers_legacy import (FIXTURES, T_TINY, TINY_FPN, TINY_UNET, fill_weights, forward_np,
                            parse_key_file, probe_input, tiny, write_original_file)
from ppddpm.config import ConfigError, ModelConfig
from ppddpm.models.legacy import (ChannelDropout, LegacyFPN, LegacyUNet, from_model_range,
                                  model_data_range, original_time_table, to_model_range,
                                  upsample_nearest2x)
from ppddpm.convert.pretrained import load_pretrained

FULL_UNET = ModelConfig(arch="legacy_unet", ch=128, ch_mult=[1, 2, 2, 2], num_res_blocks=2,
                        attn_resolutions=[16], dropout=0.1, resolution=32, num_steps=1000)
FULL_FPN = ModelConfig(arch="legacy_fpn", ch=128, ch_mult=[1, 1, 2, 2, 4, 4], num_res_blocks=2,
                       attn_resolutions=[], dropout=0.0, resolution=128, num_steps=1000)


def test_full_size_names_and_shapes_match_original_key_list():
    keys = parse_key_file()
    for kind, cfg, cls, n_tensors, n_values in (("unet", FULL_UNET, LegacyUNet, 327, 35611651),
                                                ("fpn", FULL_FPN, LegacyFPN, 217, 53405059)):
        got = [(k, list(v.shape)) for k, v in cls(cfg).state_dict().items()]
        assert got == keys[kind], f"{kind}: first difference at " + str(next(
            (i, a, b) for i, (a, b) in enumerate(zip(got, keys[kind])) if a != b) if any(
            a != b for a, b in zip(got, keys[kind])) else "length")
        assert len(got) == n_tensors
        assert sum(int(np.prod(s)) for _, s in got) == n_values


@pytest.mark.parametrize("kind", ["unet", "fpn"])
def test_forward_matches_the_original_code(kind):
    # Outputs of the original models/unet.py / models/fpn.py on the same weights,
    # made by tools/make_legacy_fixture.py.
    fx = np.load(os.path.join(FIXTURES, "legacy_parity.npz"))
    net = tiny(kind)
    np.testing.assert_allclose(net.time_emb.embedding_time[0].weight.numpy(),
                               fx[kind + "_init_table"], atol=1e-6)
    net.set_state_dict(fill_weights([(k, list(v.shape)) for k, v in net.state_dict().items()]))
    out = forward_np(net, fx["x"], fx["t"])
    assert np.abs(fx[kind + "_out"]).max() > 0.5     # the reference is not trivially small
    np.testing.assert_allclose(out, fx[kind + "_out"], rtol=0, atol=1e-5)


def test_original_time_table_is_scrambled_not_sinusoid_rows():
    table = original_time_table(T_TINY, 32)
    assert table.shape == (T_TINY, 32)
    # Row 0 of a true sinusoidal table would be [sin 0, cos 0, ...] = [0, 1, 0, 1, ...];
    # the original's reshape puts sin/cos of positions 0..T-1 at the first frequency there.
    freq0 = np.arange(T_TINY, dtype=np.float32)
    np.testing.assert_allclose(table.reshape(-1)[0:2 * T_TINY:2], np.sin(freq0), atol=1e-6)
    np.testing.assert_allclose(table.reshape(-1)[1:2 * T_TINY:2], np.cos(freq0), atol=1e-6)


@pytest.mark.parametrize("kind", ["unet", "fpn"])
def test_forward_backward_tiny(kind):
    paddle.seed(0)
    net = tiny(kind)
    net.train()
    x, t = probe_input(res=16)
    out = net(paddle.to_tensor(x), paddle.to_tensor(t))
    assert out.shape == [2, 3, 16, 16] and out.dtype == paddle.float32
    (out ** 2).mean().backward()
    for name, p in net.named_parameters():
        if name.startswith("time_emb.embedding_time.0"):
            g = p.grad.numpy()
            # only the rows of the timesteps used get gradient from the lookup
            assert np.abs(g[t]).sum() > 0 and np.abs(np.delete(g, t, axis=0)).sum() == 0
            continue
        assert p.grad is not None, name
        assert np.isfinite(p.grad.numpy()).all() and np.abs(p.grad.numpy()).sum() > 0, name


def test_timestep_changes_output():
    net = tiny("fpn")
    net.set_state_dict(fill_weights([(k, list(v.shape)) for k, v in net.state_dict().items()]))
    x, _ = probe_input()
    a = forward_np(net, x, np.array([0, 0], dtype=np.int64))
    b = forward_np(net, x, np.array([5, 5], dtype=np.int64))
    assert np.abs(a - b).max() > 1e-3


def test_channel_dropout_drops_whole_channels_only_in_training():
    paddle.seed(1)
    layer = ChannelDropout(0.5)
    x = paddle.ones([4, 64, 3, 3])
    layer.train()
    y = layer(x).numpy()
    per_channel = y.reshape(4, 64, -1)
    assert np.all(per_channel.min(-1) == per_channel.max(-1))        # constant per channel
    assert set(np.unique(y)) == {0.0, 2.0}                           # dropped or scaled 1/(1-p)
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())


def test_upsample_equals_nearest_interpolation():
    x = paddle.to_tensor(np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype("float32"))
    np.testing.assert_array_equal(upsample_nearest2x(x).numpy(),
                                  F.interpolate(x, scale_factor=2, mode="nearest").numpy())


def test_data_range_and_maps():
    assert model_data_range(tiny("unet")) == (0.0, 1.0)     # CIFAR-10 fed in [0, 1]
    assert model_data_range(tiny("fpn")) == (-1.0, 1.0)     # CelebA-HQ normalised
    assert model_data_range(paddle.nn.Linear(2, 2)) == (-1.0, 1.0)
    x = np.array([-1.0, 0.0, 1.0])
    np.testing.assert_allclose(to_model_range(x, (0.0, 1.0)), [0.0, 0.5, 1.0])
    np.testing.assert_allclose(from_model_range(np.array([0.0, 0.5, 1.0]), (0.0, 1.0)), x)
    assert to_model_range(x, (-1.0, 1.0)) is x


@pytest.mark.parametrize("bad", [dict(learn_sigma=True), dict(num_classes=10), dict(ch=48)])
def test_legacy_rejects_options_the_original_lacks(bad):
    with pytest.raises(ConfigError):
        LegacyUNet(ModelConfig(**{**TINY_UNET, **bad}))


@pytest.mark.parametrize("kind,training", [("unet", True), ("fpn", False)])
def test_original_file_loads_via_load_pretrained(tmp_path, kind, training):
    path = tmp_path / ("cifar10_ckpt_iter_7.pdparam" if training else "ddpm_i7_ema.pdparam")
    model_state, ema_state = write_original_file(path, kind, training)
    model, diffusion, cfg = load_pretrained(str(path))
    assert not model.training
    assert cfg.model.arch == "legacy_" + kind
    expected = {**(TINY_UNET if kind == "unet" else TINY_FPN)}
    for key, value in expected.items():
        assert getattr(cfg.model, key) == value, key
    assert diffusion.num_timesteps == T_TINY
    np.testing.assert_allclose(diffusion.betas, np.linspace(1e-4, 0.02, T_TINY))
    # Same output as the source network holding the weights that should be used:
    # EMA weights for a training checkpoint, "model" for an inference file.
    source = tiny(kind)
    source.set_state_dict(ema_state if training else model_state)
    x, t = probe_input()
    np.testing.assert_allclose(forward_np(model, x, t), forward_np(source, x, t), atol=1e-6)
    other = tiny(kind)
    other.set_state_dict(model_state if training else ema_state)
    assert np.abs(forward_np(model, x, t) - forward_np(other, x, t)).max() > 1e-3


def test_sampling_a_legacy_unet_clips_and_maps_through_data_range(tmp_path):
    # The UNet lives in [0, 1]: a one-step DDIM sample (eta 0) is its x0 prediction,
    # clipped to model.data_range = [0, 1] and then mapped to [-1, 1] by 2x - 1.
    from ppddpm.samplers import DDIMSampler
    path = tmp_path / "ddpm_i7_ema.pdparam"
    write_original_file(path, "unet", training=False)
    model, diffusion, _ = load_pretrained(str(path))
    sampler = DDIMSampler(diffusion, num_steps=1, eta=0.0)
    (t, t_prev), = sampler.steps
    assert t_prev == -1
    x_t = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    out = sampler.sample(model, [4, 3, 8, 8], noise=x_t, progress=False).numpy()
    eps = forward_np(model, x_t, np.full(4, t, dtype=np.int64))
    abar = diffusion.alphas_cumprod[t]
    x0 = (x_t - np.sqrt(1 - abar) * eps) / np.sqrt(abar)
    np.testing.assert_allclose(out, 2 * np.clip(x0, 0, 1) - 1, atol=1e-4)
    assert (out == -1).mean() > 0.2 and (out == 1).mean() > 0.05    # both bounds are hit
