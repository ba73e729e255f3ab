"""The oneDNN linear layers and batched products (ppddpm/models/matmul.py, onednn_matmul.py)
against Paddle's own matmul: values and every gradient, the fallbacks and the switch."""
import numpy as np
import paddle
import pytest

from helpers_onednn import requires_onednn, restore_backend  # noqa: F401 (autouse fixture)
from ppddpm.config import ModelConfig
from ppddpm.models import build_model, onednn_matmul
from ppddpm.models.conv import set_conv_backend
from ppddpm.models.layers import AttnBlock
from ppddpm.models.matmul import Linear, batched_matmul

pytestmark = requires_onednn


def _rel(a, b):
    return float(np.abs(a - b).max() / (np.abs(b).max() + 1e-30))


def _linear_run(layer, x, grad_out, backend, x_needs_grad=True):
    set_conv_backend(backend)
    x = x.detach()
    x.stop_gradient = not x_needs_grad
    layer.clear_gradients()
    y = layer(x)
    (y * grad_out).sum().backward()
    grads = [x.grad, layer.weight.grad, None if layer.bias is None else layer.bias.grad]
    return [y.numpy()] + [None if g is None else g.numpy() for g in grads]


@pytest.mark.parametrize("shape,bias", [((37, 24), True), ((3, 50, 24), True),
                                        ((2, 5, 7, 24), False)])
def test_linear_values_and_gradients_match_paddle(shape, bias):
    paddle.seed(3)
    layer = Linear(24, 40, bias_attr=None if bias else False)
    if bias:
        layer.bias.set_value(paddle.randn([40]))
    x = paddle.randn(list(shape))
    grad_out = paddle.randn(list(shape[:-1]) + [40])
    ref = _linear_run(layer, x, grad_out, "paddle")
    before = len(onednn_matmul._PLANS)
    got = _linear_run(layer, x, grad_out, "onednn")
    assert len(onednn_matmul._PLANS) > before or before == onednn_matmul.MAX_PLANS
    for g, r in zip(got, ref):
        assert (g is None) == (r is None)
        if r is not None:
            assert g.shape == r.shape and _rel(g, r) < 1e-5


def test_linear_without_input_gradient():
    """A frozen input (the first layer of a network) gets no gradient; the weights still do."""
    layer = Linear(16, 8)
    x, grad_out = paddle.randn([10, 16]), paddle.randn([10, 8])
    ref = _linear_run(layer, x, grad_out, "paddle", x_needs_grad=False)
    got = _linear_run(layer, x, grad_out, "onednn", x_needs_grad=False)
    assert got[1] is None and ref[1] is None
    assert _rel(got[2], ref[2]) < 1e-5 and _rel(got[3], ref[3]) < 1e-5


@pytest.mark.parametrize("transpose_y", [False, True])
def test_batched_matmul_values_and_gradients_match_paddle(transpose_y):
    paddle.seed(4)
    a = paddle.randn([3, 33, 20])
    b = paddle.randn([3, 41, 20] if transpose_y else [3, 20, 41])
    grad_out = paddle.randn([3, 33, 41])
    results = {}
    for backend in ("paddle", "onednn"):
        set_conv_backend(backend)
        a2, b2 = a.detach(), b.detach()
        a2.stop_gradient = b2.stop_gradient = False
        y = batched_matmul(a2, b2, transpose_y=transpose_y)
        (y * grad_out).sum().backward()
        results[backend] = [y.numpy(), a2.grad.numpy(), b2.grad.numpy()]
    for g, r in zip(results["onednn"], results["paddle"]):
        assert _rel(g, r) < 1e-5


def test_auto_keeps_paddle_below_the_size_floor():
    """auto sends only products of MIN_FLOPS or more, over MIN_ROWS rows or more, to oneDNN."""
    set_conv_backend("auto")
    onednn_matmul._PLANS.clear()
    Linear(4, 4)(paddle.randn([2, 4]))
    Linear(512, 1024)(paddle.randn([8, 512]))   # few rows (a time embedding): weight-bound
    assert not onednn_matmul._PLANS
    Linear(64, 192)(paddle.randn([4, 64, 64]))  # 256 rows, 6.3 MFLOP
    assert len(onednn_matmul._PLANS) == 1
    set_conv_backend("paddle")
    onednn_matmul._PLANS.clear()
    Linear(256, 256)(paddle.randn([64, 256]))
    assert not onednn_matmul._PLANS   # the paddle backend never uses oneDNN


def _tiny_unet():
    cfg = ModelConfig(arch="unet", ch=16, ch_mult=[1, 2], num_res_blocks=1, attn_resolutions=[8],
                      dropout=0.0, in_channels=3, out_channels=3, resolution=16,
                      norm_groups=8)
    paddle.seed(0)
    model = build_model(cfg)
    for p in model.parameters():   # no zero-initialised layer: every gradient is non-zero
        p.set_value(paddle.randn(p.shape) * 0.2)
    return model


def test_unet_training_gradients_match_paddle():
    """A whole training pass of a UNet with attention (linear layers and attention products on
    oneDNN) gives Paddle's loss and weight gradients."""
    model = _tiny_unet()
    model.train()
    x, t = paddle.randn([4, 3, 16, 16]), paddle.to_tensor([1, 5, 9, 13])
    grads = {}
    for backend in ("paddle", "onednn"):
        set_conv_backend(backend)
        model.clear_gradients()
        loss = (model(x, t) ** 2).mean()
        loss.backward()
        grads[backend] = {n: p.grad.numpy() for n, p in model.named_parameters() if p.grad is not None}
    assert grads["paddle"].keys() == grads["onednn"].keys()
    for name, ref in grads["paddle"].items():
        assert np.abs(ref).max() > 0, name
        assert _rel(grads["onednn"][name], ref) < 1e-3, name


def test_attention_gradient_in_eval_mode_keeps_paddle():
    """Eval with gradients (classifier guidance's d/dx) keeps Paddle's kernels: paddle.grad of
    the input alone works."""
    set_conv_backend("onednn")
    block = AttnBlock(32, groups=8)
    block.eval()
    block.proj_out.weight.set_value(paddle.randn([32, 32]) * 0.1)
    x = paddle.randn([2, 32, 4, 4])
    x.stop_gradient = False
    (dx,) = paddle.grad((block(x) ** 2).sum(), [x])
    set_conv_backend("paddle")
    x2 = x.detach()
    x2.stop_gradient = False
    (ref,) = paddle.grad((block(x2) ** 2).sum(), [x2])
    assert _rel(dx.numpy(), ref.numpy()) < 1e-5
