"""The residual MLP denoiser (model.arch = "mlp"): shapes, conditioning, gradients, export."""
import numpy as np
import paddle
import pytest

from ppddpm.config import ConfigError, ModelConfig
from ppddpm.engines import make_engine
from ppddpm.models import build_model
from ppddpm.models.mlp import MLP, fourier_features


def mlp_cfg(**kw):
    base = dict(arch="mlp", ch=32, num_res_blocks=2, dropout=0.0, in_channels=2,
                out_channels=2, resolution=1)
    base.update(kw)
    return ModelConfig(**base)


def randomise(model, seed=0, scale=0.3):
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.set_value(p.numpy() + scale * rng.standard_normal(p.shape).astype("float32"))
    return model


def inputs(n=6, seed=0):
    rng = np.random.default_rng(seed)
    x = paddle.to_tensor(rng.uniform(-1, 1, (n, 2, 1, 1)).astype("float32"))
    t = paddle.to_tensor(rng.integers(0, 1000, n).astype("int64"))
    return x, t


def test_build_model_dispatches_mlp_and_output_shapes():
    x, t = inputs()
    model = build_model(mlp_cfg())
    assert isinstance(model, MLP)
    out = model(x, t)
    assert out.shape == [6, 2, 1, 1]
    np.testing.assert_array_equal(out.numpy(), 0)          # zero-initialised output layer
    assert build_model(mlp_cfg(learn_sigma=True))(x, t).shape == [6, 4, 1, 1]
    # any small input, flattened: 3 channels of 2x2
    assert build_model(mlp_cfg(in_channels=3, out_channels=3, resolution=2))(
        paddle.zeros([2, 3, 2, 2]), t[:2]).shape == [2, 3, 2, 2]
    with pytest.raises(ConfigError, match="ch >= 2"):
        build_model(mlp_cfg(ch=1))


def test_output_depends_on_x_and_t_per_example():
    model = randomise(build_model(mlp_cfg()))
    x, t = inputs()
    out = model(x, t).numpy()
    assert not np.allclose(out, model(x, t + 1).numpy(), atol=1e-4)
    assert not np.allclose(out, model(x + 0.1, t).numpy(), atol=1e-4)
    # example i's output does not depend on the other examples of the batch
    np.testing.assert_allclose(model(x[2:3], t[2:3]).numpy(), out[2:3], rtol=1e-5, atol=1e-6)


def test_class_labels_condition_and_none_means_the_no_label_id():
    model = randomise(build_model(mlp_cfg(num_classes=25)))
    x, t = inputs()
    y = paddle.to_tensor(np.arange(6, dtype="int64"))
    assert not np.allclose(model(x, t, y).numpy(), model(x, t, y + 1).numpy(), atol=1e-4)
    np.testing.assert_array_equal(model(x, t).numpy(),
                                  model(x, t, paddle.full([6], 25, dtype="int64")).numpy())
    with pytest.raises(ValueError, match="num_classes"):
        build_model(mlp_cfg())(x, t, y)


def test_fourier_features_are_the_values_then_sines_then_cosines():
    x = np.array([[0.3, -0.7]], dtype="float32")
    freqs = np.array([1.0, 10.0], dtype="float32")
    out = fourier_features(paddle.to_tensor(x), paddle.to_tensor(freqs)).numpy()
    a = x[0][:, None] * freqs[None, :]
    ref = np.concatenate([x[0], np.concatenate([np.sin(a), np.cos(a)], axis=1).ravel()])
    np.testing.assert_allclose(out[0], ref, atol=2e-6)
    assert "freqs" not in build_model(mlp_cfg()).state_dict()   # fixed, not a weight


def test_every_parameter_gets_a_gradient():
    model = randomise(build_model(mlp_cfg(learn_sigma=True, num_classes=3)))
    x, t = inputs()
    model(x, t, paddle.to_tensor(np.array([0, 1, 2, 3, 0, 1], dtype="int64"))).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name


def test_export_to_paddle_inference_matches_the_dynamic_graph(tmp_path):
    # make_engine checks the export against the dygraph (1e-4) and raises if they disagree:
    # a swish on the residual stream was once run in place by the predictor's passes.
    model = randomise(build_model(mlp_cfg(learn_sigma=True)))
    engine = make_engine(model, "inference", image_shape=[2, 1, 1], cache_dir=str(tmp_path))
    x, t = inputs(n=9, seed=5)
    np.testing.assert_allclose(engine(x, t).numpy(), model(x, t).numpy(), rtol=1e-4, atol=1e-5)
