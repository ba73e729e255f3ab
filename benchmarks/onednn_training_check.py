"""Why ppddpm does not train with oneDNN: four reproducible faults of Paddle 3.3.1 (CPU wheel)
when a training step runs as a static program with FLAGS_use_mkldnn=1 (the only way oneDNN
kernels reach training; the dynamic graph ignores the flag for conv2d).

  python benchmarks/onednn_training_check.py segfault   # matmul_grad with a no-grad input
  python benchmarks/onednn_training_check.py clip       # UNet + ClipGradByGlobalNorm: dnnl::error
  python benchmarks/onednn_training_check.py sign       # subtract_grad: wrong sign
  python benchmarks/onednn_training_check.py unet       # UNet gradients vs native kernels
  python benchmarks/onednn_training_check.py            # all four, each in its own process

Each case runs in a fresh process with FLAGS_use_mkldnn=1 (and, for the comparisons, once
more with 0); the parent reports the exit status and the result.
"""
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def _linear_program(clip):
    import paddle
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        x = paddle.static.data("x", [4, 8], "float32")       # a feed: needs no gradient
        loss = (paddle.nn.Linear(8, 8)(x) ** 2).mean()
        grad_clip = paddle.nn.ClipGradByGlobalNorm(1.0) if clip else None
        paddle.optimizer.Adam(1e-3, grad_clip=grad_clip).minimize(loss)
    return main, startup, loss


def case_segfault():
    """oneDNN matmul_grad with an input that needs no gradient (dx not requested)."""
    import paddle
    paddle.enable_static()
    main, startup, loss = _linear_program(clip=False)
    exe = paddle.static.Executor(paddle.CPUPlace())
    exe.run(startup)
    print("loss", exe.run(main, feed={"x": np.ones((4, 8), "float32")}, fetch_list=[loss])[0])


def case_clip():
    """The CIFAR-10 UNet's train step with ClipGradByGlobalNorm(1.0) (as the trainer uses)."""
    import paddle
    paddle.enable_static()
    model, loss, main, startup = _unet_program(clip=True)
    exe = paddle.static.Executor(paddle.CPUPlace())
    exe.run(startup)
    from worker import inputs
    x, t, n = inputs(8)
    print("loss", exe.run(main, feed={"x": x, "t": t, "noise": n}, fetch_list=[loss])[0])


def _unet_program(clip=False):
    """The UNet's L_simple as (out - target)^2 (avoids the sign fault); with clip, + Adam."""
    import paddle
    sys.path.insert(0, os.path.dirname(HERE))
    sys.path.insert(0, HERE)
    import ppddpm.models.unet as unet_mod
    from ppddpm import GaussianDiffusion, get_beta_schedule
    from ppddpm.config import ModelConfig
    from ppddpm.models import build_model
    real = unet_mod.timestep_embedding

    def embedding_with_grad(*a, **k):   # sidesteps the matmul_grad segfault
        out = real(*a, **k)
        out.stop_gradient = False
        return out
    unet_mod.timestep_embedding = embedding_with_grad
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        paddle.seed(0)
        model = build_model(ModelConfig(dropout=0.0))
        diffusion = GaussianDiffusion(get_beta_schedule("linear", 1000, 1e-4, 0.02))
        xs = paddle.static.data("x", [8, 3, 32, 32], "float32")
        ts = paddle.static.data("t", [8], "int64")
        ns = paddle.static.data("noise", [8, 3, 32, 32], "float32")
        xt = diffusion.q_sample(xs, ts, noise=ns)
        loss = ((model(xt, ts) - ns) ** 2).mean()
        if clip:
            paddle.optimizer.Adam(2e-4, grad_clip=paddle.nn.ClipGradByGlobalNorm(1.0)).minimize(loss)
        else:
            model._pairs = paddle.static.append_backward(loss)
    unet_mod.timestep_embedding = real
    return model, loss, main, startup


def case_sign():
    """d/dw of mean((target - w*x)^2): prints the gradient of w."""
    import paddle
    paddle.enable_static()
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        x = paddle.static.data("x", [4, 8], "float32")
        target = paddle.static.data("target", [4, 8], "float32")
        w = paddle.create_parameter([8], "float32", default_initializer=paddle.nn.initializer.Constant(0.5))
        loss = ((target - x * w) ** 2).mean()
        (_, grad), = paddle.static.append_backward(loss, parameter_list=[w])
    exe = paddle.static.Executor(paddle.CPUPlace())
    exe.run(startup)
    rs = np.random.RandomState(0)
    feed = {"x": rs.rand(4, 8).astype("float32"), "target": rs.rand(4, 8).astype("float32")}
    g = exe.run(main, feed=feed, fetch_list=[grad])[0]
    np.save(os.environ["OUT"], g)


def case_unet():
    """All parameter gradients of the CIFAR-10 UNet's L_simple, saved for comparison."""
    import paddle
    paddle.enable_static()
    model, loss, main, startup = _unet_program()
    from worker import inputs
    pairs = model._pairs
    exe = paddle.static.Executor(paddle.CPUPlace())
    exe.run(startup)
    scope, rs = paddle.static.global_scope(), np.random.RandomState(1)
    for p, _ in pairs:   # no zero-initialised layers, so every gradient path carries signal
        t = scope.find_var(p.name).get_tensor()
        if not np.abs(np.array(t)).max():
            t.set((rs.randn(*p.shape) * 0.02).astype("float32"), paddle.CPUPlace())
    x, t, n = inputs(8)
    out = exe.run(main, feed={"x": x, "t": t, "noise": n}, fetch_list=[g for _, g in pairs])
    names = {p.name: k for k, p in model.state_dict().items()}
    order = [names[p.name] for p, _ in pairs]
    np.savez(os.environ["OUT"], order=np.array(order), **dict(zip(order, out)))


def _run(case, onednn, out=None):
    env = dict(os.environ, FLAGS_use_mkldnn="1" if onednn else "0", OMP_NUM_THREADS="1",
               PYTHONPATH=os.path.dirname(HERE), GLOG_minloglevel="2")
    if out:
        env["OUT"] = out
    proc = subprocess.run([sys.executable, __file__, "--child", case], env=env,
                          capture_output=True, text=True, timeout=1800)
    lines = [l for l in (proc.stdout + proc.stderr).splitlines() if l.strip()]
    pick = [l for l in lines if l.startswith("loss")] if proc.returncode == 0 else \
        [l for l in lines if "Error" in l or "exception" in l or "Segmentation" in l]
    return proc.returncode, (pick[-1] if pick else (lines[-1] if lines else "")).strip()


def main():
    import tempfile
    cases = sys.argv[1:] or ["segfault", "clip", "sign", "unet"]
    tmp = tempfile.mkdtemp()
    for case in cases:
        if case in ("segfault", "clip"):
            for onednn in (False, True):
                rc, msg = _run(case, onednn)
                print(f"{case:8s} oneDNN={int(onednn)}: exit {rc} ({'ok' if rc == 0 else 'FAILED'}): {msg[:200]}")
            continue
        ref, got = os.path.join(tmp, f"{case}0.npz"), os.path.join(tmp, f"{case}1.npz")
        for onednn, path in ((False, ref), (True, got)):
            rc, msg = _run(case, onednn, path)
            if rc:
                print(f"{case:8s} oneDNN={int(onednn)}: exit {rc}: {msg[:200]}")
        if case == "sign":
            a, b = np.load(ref + ".npy" if not ref.endswith(".npy") else ref), np.load(got + ".npy")
            print(f"sign     grad native {a[:3]} ... oneDNN {b[:3]} ...; "
                  f"oneDNN == -native: {np.allclose(a, -b, rtol=1e-5)}")
        else:
            a, b = np.load(ref), np.load(got)
            order = list(a["order"])
            rel = {k: np.abs(a[k] - b[k]).max() / (np.abs(a[k]).max() + 1e-12) for k in order}
            bad = [k for k in order if rel[k] > 1e-3]
            good = [k for k in order if k not in bad]
            print(f"unet     {len(bad)} of {len(order)} parameter gradients differ (relative "
                  f"max |diff| > 1e-3, worst {max(rel.values()):.3g}); matching: "
                  f"{', '.join(good[:4])}{', ...' if len(good) > 4 else ''} ({len(good)})")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        {"segfault": case_segfault, "clip": case_clip, "sign": case_sign,
         "unet": case_unet}[sys.argv[2]]()
    else:
        main()
