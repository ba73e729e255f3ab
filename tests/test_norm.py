"""ppddpm.models.norm.GroupNorm: its CPU training pass (two batch normalisations) gives
nn.GroupNorm's values and gradients to float32 rounding, on the shapes of the small UNets
(32 groups, MNIST's 8, odd sizes); evaluation runs nn.GroupNorm's own kernel unchanged."""
import numpy as np
import paddle
import pytest

from ppddpm.models.norm import GroupNorm, use_batch_norm_kernels


def values_and_grads(layer, x0, g):
    x = paddle.to_tensor(x0, stop_gradient=False)
    y = layer(x)
    y.backward(paddle.to_tensor(g))
    out = [y.numpy(), x.grad.numpy(), layer.weight.grad.numpy(), layer.bias.grad.numpy()]
    layer.clear_gradients()
    return out


@pytest.mark.parametrize("shape,groups", [((64, 32, 16, 16), 32), ((8, 64, 7, 7), 8),
                                          ((3, 96, 5, 4), 32), ((2, 16, 1, 1), 4)])
def test_training_pass_matches_paddles_group_norm(shape, groups):
    use_batch_norm_kernels(True)   # as the trainer sets it for small models
    rng = np.random.default_rng(0)
    x0 = (rng.standard_normal(shape) * 3 + 1).astype("float32")
    g = rng.standard_normal(shape).astype("float32")
    ref, fast = paddle.nn.GroupNorm(groups, shape[1], epsilon=1e-6), GroupNorm(groups, shape[1], epsilon=1e-6)
    for layer in (ref, fast):
        layer.weight.set_value(paddle.to_tensor(rng.standard_normal(shape[1]).astype("float32")))
    fast.set_state_dict(ref.state_dict())
    fast.bias.set_value(ref.bias + 0.5)
    ref.bias.set_value(ref.bias + 0.5)
    fast.train()
    want, got = values_and_grads(ref, x0, g), values_and_grads(fast, x0, g)
    for name, a, b in zip(("y", "dx", "dweight", "dbias"), want, got):
        scale = np.abs(a).max() + 1e-12
        assert np.abs(a - b).max() / scale < 2e-5, name


def test_evaluation_runs_the_original_kernel_and_the_state_is_the_same():
    layer = GroupNorm(8, 16, epsilon=1e-6)
    assert sorted(layer.state_dict()) == sorted(paddle.nn.GroupNorm(8, 16).state_dict())
    layer.eval()
    x = paddle.randn([2, 16, 4, 4])
    ref = paddle.nn.GroupNorm(8, 16, epsilon=1e-6)
    ref.set_state_dict(layer.state_dict())
    np.testing.assert_array_equal(layer(x).numpy(), ref(x).numpy())
