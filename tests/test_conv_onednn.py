"""The oneDNN dygraph convolutions (ppddpm/models/onednn.py, models/conv.py) against Paddle's own
conv2d kernels: values and gradients, the fallbacks, the switch and the plan cache."""
import numpy as np
import paddle
import pytest

from helpers_onednn import requires_onednn, restore_backend  # noqa: F401 (autouse fixture)
from ppddpm.models import onednn
from ppddpm.config import ConfigError, ModelConfig
from ppddpm.models import build_model
from ppddpm.models import conv as conv_mod
from ppddpm.models.conv import Conv2d, set_conv_backend

pytestmark = requires_onednn


def _run(layer, x, grad_out, backend):
    """(y, dx, dw, db) of sum(y * grad_out) with the given backend."""
    set_conv_backend(backend)
    x = x.detach()
    x.stop_gradient = False
    layer.clear_gradients()
    y = layer(x)
    (y * grad_out).sum().backward()
    grads = [x.grad, layer.weight.grad, None if layer.bias is None else layer.bias.grad]
    return [y.numpy()] + [None if g is None else g.numpy() for g in grads]


def _rel(a, b):
    return float(np.abs(a - b).max() / (np.abs(b).max() + 1e-30))


CASES = [  # (N, C, H, W, O, kernel, stride, padding)
    (4, 16, 8, 8, 32, 3, 1, 1),
    (2, 3, 16, 16, 32, 3, 1, 1),             # RGB input (conv_in)
    (3, 32, 8, 8, 32, 3, 2, [0, 1, 0, 1]),   # DDPM downsample: TF 'SAME' stride 2
    (2, 32, 8, 8, 3, 3, 1, 1),               # conv_out to 3 channels
    (2, 48, 8, 6, 32, 1, 1, 0),              # 1x1 shortcut, non-square
    (1, 16, 9, 7, 16, 3, 2, 1),              # odd sizes, symmetric stride-2 padding
]


@pytest.mark.parametrize("case", CASES, ids=[str(c[:7]) for c in CASES])
def test_values_and_gradients_match_paddle(case):
    n, c, h, w, o, k, s, pad = case
    paddle.seed(1)
    layer = Conv2d(c, o, k, stride=s, padding=pad)
    layer.bias.set_value(paddle.randn([o]))
    x = paddle.randn([n, c, h, w])
    y_shape = paddle.nn.Conv2D(c, o, k, stride=s, padding=pad)(x).shape
    grad_out = paddle.randn(y_shape)
    ref = _run(layer, x, grad_out, "paddle")
    got = _run(layer, x, grad_out, "onednn")
    for name, a, b in zip(("y", "dx", "dw", "db"), got, ref):
        assert a.shape == b.shape, name
        assert _rel(a, b) < 2e-5, (name, _rel(a, b))
    key = (tuple(x.shape), tuple(layer.weight.shape), True, (s, s),
           tuple(pad if isinstance(pad, list) else [pad] * 4))
    assert key in onednn._PLANS   # the oneDNN path really ran


def test_no_bias_no_input_grad_and_noncontiguous_input():
    paddle.seed(2)
    layer = Conv2d(8, 16, 3, padding=1, bias_attr=False)
    x_t = paddle.randn([2, 8, 6, 6]).transpose([0, 1, 3, 2])   # a strided view
    grad_out = paddle.randn([2, 16, 6, 6])
    out = {}
    for backend in ("paddle", "onednn"):
        set_conv_backend(backend)
        layer.clear_gradients()
        x = x_t.detach()          # stop_gradient: no dx wanted
        y = layer(x)
        (y * grad_out).sum().backward()
        assert x.grad is None
        out[backend] = (y.numpy(), layer.weight.grad.numpy())
    assert _rel(out["onednn"][0], out["paddle"][0]) < 2e-5
    assert _rel(out["onednn"][1], out["paddle"][1]) < 2e-5


@pytest.mark.parametrize("kwargs, dtype", [
    (dict(dilation=2, padding=2), "float32"),
    (dict(groups=2, padding=1), "float32"),
    (dict(padding=1, padding_mode="reflect"), "float32"),
    (dict(padding="SAME"), "float32"),
    (dict(padding=1), "float64"),
])
def test_unsupported_configurations_use_paddle_exactly(kwargs, dtype):
    paddle.seed(3)
    paddle.set_default_dtype(dtype)
    try:
        layer = Conv2d(8, 8, 3, **kwargs)
        ref = paddle.nn.Conv2D(8, 8, 3, **kwargs)
        ref.set_state_dict(layer.state_dict())
        x = paddle.randn([2, 8, 8, 8], dtype=dtype)
    finally:
        paddle.set_default_dtype("float32")
    set_conv_backend("onednn")
    assert layer._onednn_plan(x) is None
    np.testing.assert_array_equal(layer(x).numpy(), ref(x).numpy())


def test_backend_paddle_is_paddles_conv_bit_for_bit():
    paddle.seed(4)
    layer = Conv2d(16, 16, 3, padding=1)
    ref = paddle.nn.Conv2D(16, 16, 3, padding=1)
    ref.set_state_dict(layer.state_dict())
    x = paddle.randn([2, 16, 8, 8])
    set_conv_backend("paddle")
    np.testing.assert_array_equal(layer(x).numpy(), ref(x).numpy())
    set_conv_backend("onednn")
    assert layer._onednn_plan(x) is not None
    assert _rel(layer(x).numpy(), ref(x).numpy()) < 2e-5


def test_auto_leaves_tiny_convs_to_paddle_and_takes_large_ones():
    set_conv_backend("auto")
    layer = Conv2d(8, 8, 3, padding=1)
    tiny = paddle.randn([1, 8, 4, 4])          # 0.02 MFLOP: the call overhead would dominate
    large = paddle.randn([4, 8, 32, 32])       # 4.7 MFLOP
    assert layer._onednn_plan(tiny) is None
    assert layer._onednn_plan(large) is not None
    set_conv_backend("onednn")                 # forced: every size
    assert layer._onednn_plan(tiny) is not None


def test_switch_errors_name_the_value(monkeypatch):
    with pytest.raises(ConfigError, match="'cudnn'"):
        set_conv_backend("cudnn")
    monkeypatch.setattr(conv_mod, "_backend", "mkl")
    with pytest.raises(ConfigError, match="PPDDPM_CONV_BACKEND.*'mkl'"):
        conv_mod.conv_backend()


def test_missing_library_falls_back_or_fails_clearly(monkeypatch):
    monkeypatch.setattr(onednn, "_LIB", None)
    monkeypatch.setattr(onednn, "_LIB_ERROR", None)
    monkeypatch.setattr(onednn.glob, "glob", lambda pattern: [])
    ok, why = onednn.available()
    assert not ok and "no libdnnl.so.3" in why
    with pytest.raises(onednn.OneDNNUnavailable, match="no libdnnl.so.3.*use auto or paddle"):
        set_conv_backend("onednn")
    set_conv_backend("auto")
    layer = Conv2d(4, 4, 3, padding=1)
    ref = paddle.nn.Conv2D(4, 4, 3, padding=1)
    ref.set_state_dict(layer.state_dict())
    x = paddle.randn([1, 4, 5, 5])
    np.testing.assert_array_equal(layer(x).numpy(), ref(x).numpy())


def test_plan_cache_is_bounded_and_evicted_plans_are_released(monkeypatch):
    monkeypatch.setattr(onednn, "_PLANS", onednn.OrderedDict())
    monkeypatch.setattr(onednn, "MAX_PLANS", 2)
    set_conv_backend("onednn")
    layer = Conv2d(4, 8, 3, padding=1)
    ref = paddle.nn.Conv2D(4, 8, 3, padding=1)
    ref.set_state_dict(layer.state_dict())
    for _ in range(2):
        for size in (5, 6, 7, 8):   # four configurations through a cache of two
            x = paddle.randn([2, 4, size, size])
            assert _rel(layer(x).numpy(), ref(x).numpy()) < 2e-5
            assert len(onednn._PLANS) <= 2


def test_unet_gradients_and_adam_steps_match_paddle_kernels():
    """The whole official UNet (small width): every parameter gradient and three Adam
    steps of L_simple agree with Paddle's own conv kernels. (Paddle 3.3.1's static oneDNN
    path got 262 of 304 gradients wrong on this network: benchmarks/onednn_training_check.py.)
    Width 64, not 32: with GroupNorm(32) on 32 channels every group is one channel, the
    norm cancels per-channel shifts and the conv biases' true gradient is exactly zero, so
    both kernels would return rounding noise with no meaningful relative error."""
    from ppddpm import GaussianDiffusion, get_beta_schedule
    cfg = ModelConfig(ch=64, ch_mult=[1, 2], num_res_blocks=1, attn_resolutions=[8],
                      dropout=0.0, resolution=16)
    diffusion = GaussianDiffusion(get_beta_schedule("linear", 1000, 1e-4, 0.02))
    rs = np.random.RandomState(0)
    x0 = paddle.to_tensor(rs.standard_normal((4, 3, 16, 16)).astype("float32"))
    t = paddle.to_tensor(rs.randint(0, 1000, 4).astype("int64"))
    noise = paddle.to_tensor(rs.standard_normal((4, 3, 16, 16)).astype("float32"))
    runs = {}
    for backend in ("paddle", "onednn"):
        set_conv_backend(backend)
        paddle.seed(0)
        model = build_model(cfg)
        for p in model.parameters():   # no zero-initialised layers: every gradient is live
            p.set_value(p + paddle.randn(p.shape) * 0.05)
        opt = paddle.optimizer.Adam(2e-4, parameters=model.parameters())
        losses, grads = [], None
        for step in range(3):
            loss = diffusion.training_losses(model, x0, t, noise=noise)["loss"].mean()
            loss.backward()
            if step == 0:
                grads = {n: p.grad.numpy().copy() for n, p in model.named_parameters()}
            opt.step()
            opt.clear_grad()
            losses.append(float(loss))
        runs[backend] = losses, grads
    (ref_losses, ref_grads), (losses, grads) = runs["paddle"], runs["onednn"]
    assert len(grads) == len(ref_grads)
    bad = {n: _rel(grads[n], g) for n, g in ref_grads.items() if _rel(grads[n], g) > 1e-4}
    assert not bad, bad
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    assert losses[2] < losses[0]   # and it trains


def test_one_plan_used_from_two_python_threads():
    import threading
    set_conv_backend("onednn")
    paddle.seed(5)
    layer = Conv2d(8, 8, 3, padding=1)
    ref_layer = paddle.nn.Conv2D(8, 8, 3, padding=1)
    ref_layer.set_state_dict(layer.state_dict())
    inputs = [paddle.randn([2, 8, 10, 10]) for _ in range(2)]
    refs = [ref_layer(x).numpy() for x in inputs]
    errors = []

    def work(i):
        for _ in range(30):
            errors.append(_rel(layer(inputs[i]).numpy(), refs[i]))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(errors) == 60 and max(errors) < 2e-5
