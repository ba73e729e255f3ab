"""One benchmark measurement in a fresh process; prints one JSON line.

Run by bench_sampling.py / bench_training.py under each framework's own Python:
  ppddpm, ppddpm-dygraph   /work/venv        (paddle, this repo on PYTHONPATH)
  diffusers                /work/venv-ref    (torch 2.13 + diffusers)
  ppdiffusers              /work/venv-ppdiff (paddle + ppdiffusers)
Every framework gets the same network (the official DDPM CIFAR-10 UNet, 35.7M parameters,
random weights), the same inputs (numpy RandomState(0)) and the same work.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import numpy as np

# The DDPM CIFAR-10 UNet (google/ddpm-cifar10-32) as a diffusers/ppdiffusers UNet2DModel.
UNET2D = dict(sample_size=32, in_channels=3, out_channels=3, layers_per_block=2,
              block_out_channels=(128, 256, 256, 256), norm_eps=1e-6, dropout=0.1,
              down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
              up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
              attention_head_dim=None, flip_sin_to_cos=False, freq_shift=1, downsample_padding=0)
# A small UNet for 16x16 grey digits (651K parameters): ch 32, ch_mult [1, 2], one block per
# level, no attention; the same network in both layouts.
SMALL = dict(in_channels=1, out_channels=1, resolution=16, ch=32, ch_mult=[1, 2],
             num_res_blocks=1, attn_resolutions=[])
UNET2D_SMALL = dict(UNET2D, sample_size=16, in_channels=1, out_channels=1, layers_per_block=1,
                    block_out_channels=(32, 64), down_block_types=("DownBlock2D", "DownBlock2D"),
                    up_block_types=("UpBlock2D", "UpBlock2D"))


def image_shape(args):
    return [1, 16, 16] if args.arch == "small" else [3, 32, 32]


def inputs(batch, shape=(3, 32, 32)):
    rs = np.random.RandomState(0)
    x = rs.standard_normal((batch, *shape)).astype(np.float32)
    t = rs.randint(0, 1000, batch).astype(np.int64)
    noise = rs.standard_normal((batch, *shape)).astype(np.float32)
    return x, t, noise


CPU_TIMES = []   # process CPU seconds (all threads) of every timed call: robust to other load


def ppddpm_train_step(diffusion, net, opt, xs, ts, ns, losses):
    """One dygraph step of L_simple plus Adam on fixed inputs; appends the loss."""
    def step():
        loss = diffusion.training_losses(net, xs, ts, noise=ns)["loss"].mean()
        loss.backward()
        opt.step()
        opt.clear_grad(set_to_zero=False)   # free the gradients, as the trainer does
        losses.append(float(loss))
    return step


def timed(fn, warmup, steps):
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(steps):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
        CPU_TIMES.append(time.process_time() - c0)
    return out


# -- ppddpm ----------------------------------------------------------------------------
def ppddpm_setup(args, train):
    import paddle
    from ppddpm.config import ModelConfig
    from ppddpm.models import build_model, count_parameters
    paddle.seed(0)
    # the CIFAR-10 defaults (ch 128, [1,2,2,2], attn 16) or the small digits UNet
    model = build_model(ModelConfig(**(SMALL if getattr(args, "arch", "cifar") == "small" else {})))
    if not train:   # non-zero output layers, so the sampler does real work
        for p in model.parameters():
            if not float(p.abs().max()):
                p.set_value(paddle.randn(p.shape) * 0.02)
    return paddle, model, count_parameters(model)


def ppddpm_engine(args, model, info):
    if args.framework == "ppddpm-dygraph":
        import paddle
        paddle.base.core.set_num_threads(args.threads)
        model.eval()
        return model
    from ppddpm.engines.predictor import InferenceModel
    from ppddpm.engines.onnx import OnnxModel
    kind = OnnxModel if args.framework == "ppddpm-onnx" else InferenceModel
    t0 = time.perf_counter()
    eng = kind(model, image_shape(args), cache_dir=args.cache_dir, threads=args.threads)
    info["engine_setup_s"] = time.perf_counter() - t0
    info["exported"] = eng.exported
    return eng


def run_ppddpm(args, info):
    paddle, model, info["params"] = ppddpm_setup(args, args.task == "train_step")
    x, t, noise = inputs(args.batch, image_shape(args))
    if args.task == "sample_step":
        net = ppddpm_engine(args, model, info)
        xs, ts = paddle.to_tensor(x), paddle.to_tensor(t)

        def step():
            with paddle.no_grad():
                net(xs, ts).numpy()
        return timed(step, args.warmup, args.steps)
    if args.task == "ddim":
        from ppddpm import DDIMSampler, GaussianDiffusion, get_beta_schedule
        net = ppddpm_engine(args, model, info)
        sampler = DDIMSampler(GaussianDiffusion(get_beta_schedule("linear", 1000, 1e-4, 0.02)),
                              num_steps=args.ddim_steps, eta=0.0)
        return timed(lambda: sampler.sample(net, [args.batch, 3, 32, 32], seed=0,
                                            progress=False).numpy(), 0, args.steps)
    # train_step: the package's own loss (L_simple, eq. 14) + backward + Adam, on the
    # threads and conv kernels the CLI would use (runtime/device.py, models/conv.py)
    from ppddpm import GaussianDiffusion, get_beta_schedule
    from ppddpm.models.conv import conv_backend, onednn_enabled
    from ppddpm.runtime.device import use_compute_threads
    info["extra"] = {"threads": use_compute_threads(), "conv": conv_backend(),
                     "onednn_conv": onednn_enabled()}
    diffusion = GaussianDiffusion(get_beta_schedule("linear", 1000, 1e-4, 0.02))
    model.train()
    opt = paddle.optimizer.Adam(2e-4, parameters=model.parameters())
    xs, ts, ns = paddle.to_tensor(x), paddle.to_tensor(t), paddle.to_tensor(noise)
    losses = []
    step = ppddpm_train_step(diffusion, model, opt, xs, ts, ns, losses)
    times = timed(step, args.warmup, args.steps)
    info["losses"] = losses
    return times


# -- ppddpm, data parallel: one single-threaded process per core (gloo) ------------------
def _dp_rank(args, out_dir):
    """One rank: half of the same batch, DataParallel all-reduces the gradients."""
    import paddle
    import paddle.distributed as dist
    dist.init_parallel_env()
    rank, size = dist.get_rank(), dist.get_world_size()
    from ppddpm import GaussianDiffusion, get_beta_schedule
    _, model, params = ppddpm_setup(args, True)
    diffusion = GaussianDiffusion(get_beta_schedule("linear", 1000, 1e-4, 0.02))
    net = paddle.DataParallel(model)
    net.train()
    opt = paddle.optimizer.Adam(2e-4, parameters=model.parameters())
    x, t, noise = inputs(args.batch)
    part = slice(rank * args.batch // size, (rank + 1) * args.batch // size)
    xs, ts, ns = (paddle.to_tensor(a[part]) for a in (x, t, noise))
    losses = []
    step = ppddpm_train_step(diffusion, net, opt, xs, ts, ns, losses)
    times = timed(step, args.warmup, args.steps)
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump({"times": times, "cpu_times": CPU_TIMES, "params": params, "losses": losses,
                   "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}, f)


def run_ppddpm_dp(args, info):
    import tempfile
    import paddle.distributed as dist
    if args.task != "train_step":
        raise SystemExit("ppddpm-dp2 measures training only")
    out = tempfile.mkdtemp(prefix="ppddpm-dp-")
    dist.spawn(_dp_rank, args=(args, out), nprocs=2, backend="gloo")
    ranks = [json.load(open(os.path.join(out, f"rank{r}.json"))) for r in range(2)]
    info["params"] = ranks[0]["params"]
    info["losses_per_rank"] = [r["losses"] for r in ranks]
    # the step ends when both ranks have their all-reduced gradients: take the slower rank
    CPU_TIMES[:] = [a + b for a, b in zip(ranks[0]["cpu_times"], ranks[1]["cpu_times"])]
    info["rss_parent_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    info["maxrss_ranks_mb"] = [r["maxrss_mb"] for r in ranks]
    return [max(a, b) for a, b in zip(ranks[0]["times"], ranks[1]["times"])]


# -- ppddpm as a static program with oneDNN (a prototype: not what the trainer runs) ------
def run_ppddpm_static(args, info):
    """The same loss and Adam as a static Program run by the Executor; FLAGS_use_mkldnn=1
    (set by the driver) gives oneDNN kernels. Paddle 3.3.1's oneDNN matmul_grad segfaults
    when an input needs no gradient (the sinusoidal time embedding feeding the first Linear),
    so that one tensor is marked as needing a gradient; no values change (docs/speed.md)."""
    import paddle
    paddle.enable_static()
    import ppddpm.models.unet as unet_mod
    from ppddpm import GaussianDiffusion, get_beta_schedule
    from ppddpm.config import ModelConfig
    from ppddpm.models import build_model, count_parameters
    real = unet_mod.timestep_embedding

    def embedding_with_grad(*a, **k):
        out = real(*a, **k)
        out.stop_gradient = False
        return out
    unet_mod.timestep_embedding = embedding_with_grad
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        paddle.seed(0)
        model = build_model(ModelConfig())
        diffusion = GaussianDiffusion(get_beta_schedule("linear", 1000, 1e-4, 0.02))
        b = args.batch
        xs = paddle.static.data("x", [b, 3, 32, 32], "float32")
        ts = paddle.static.data("t", [b], "int64")
        ns = paddle.static.data("noise", [b, 3, 32, 32], "float32")
        loss = diffusion.training_losses(model, xs, ts, noise=ns)["loss"].mean()
        paddle.optimizer.Adam(2e-4).minimize(loss)
    unet_mod.timestep_embedding = real
    info["params"] = count_parameters(model)
    exe = paddle.static.Executor(paddle.CPUPlace())
    exe.run(startup)
    x, t, noise = inputs(args.batch)
    feed = {"x": x, "t": t, "noise": noise}
    losses = []
    times = timed(lambda: losses.append(float(exe.run(main, feed=feed, fetch_list=[loss])[0])),
                  args.warmup, args.steps)
    info["losses"] = losses
    return times


# -- diffusers (torch) and ppdiffusers (paddle) share one API ------------------------------
def run_peer(args, info):
    if args.framework.startswith("diffusers"):
        import torch as fw
        import diffusers.utils.import_utils as iu
        # diffusers imports torchvision when installed; a torchvision wheel built for another
        # torch variant fails with "operator torchvision::nms does not exist". Unneeded here.
        iu._torchvision_available = False
        from diffusers import DDIMPipeline, DDIMScheduler, DDPMScheduler, UNet2DModel
        fw.set_num_threads(args.threads)
        fw.manual_seed(0)
        tensor, no_grad = fw.from_numpy, fw.no_grad
        info["version"] = f"torch {fw.__version__}"
    else:
        import paddle as fw
        from ppdiffusers import DDIMPipeline, DDIMScheduler, DDPMScheduler, UNet2DModel
        fw.seed(0)
        tensor, no_grad = fw.to_tensor, fw.no_grad
        info["version"] = f"paddle {fw.__version__}"
    unet = UNet2DModel(**(UNET2D_SMALL if args.arch == "small" else UNET2D))
    info["params"] = sum(int(np.prod(p.shape)) for p in unet.parameters())
    x, t, noise = inputs(args.batch, image_shape(args))
    if args.task == "sample_step":
        unet.eval()
        xs, ts = tensor(x), tensor(t)

        def step():
            with no_grad():
                unet(xs, ts).sample.numpy()
        return timed(step, args.warmup, args.steps)
    if args.task == "ddim":
        unet.eval()
        sched = DDIMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02,
                              beta_schedule="linear", clip_sample=True)
        pipe = DDIMPipeline(unet=unet, scheduler=sched)
        pipe.set_progress_bar_config(disable=True)
        return timed(lambda: pipe(batch_size=args.batch, num_inference_steps=args.ddim_steps,
                                  eta=0.0, output_type="np"), 0, args.steps)
    sched = DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02,
                          beta_schedule="linear")
    unet.train()
    xs, ts, ns = tensor(x), tensor(t), tensor(noise)
    losses = []
    if args.framework.startswith("diffusers"):
        opt = fw.optim.Adam(unet.parameters(), lr=2e-4)

        def step():
            loss = ((unet(sched.add_noise(xs, ns, ts), ts).sample - ns) ** 2).mean()
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses.append(float(loss))
    else:
        opt = fw.optimizer.Adam(2e-4, parameters=unet.parameters())

        def step():
            loss = ((unet(sched.add_noise(xs, ns, ts), ts).sample - ns) ** 2).mean()
            loss.backward()
            opt.step()
            opt.clear_grad()
            losses.append(float(loss))
    times = timed(step, args.warmup, args.steps)
    info["losses"] = losses
    return times


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--framework", required=True,
                   choices=["ppddpm", "ppddpm-onnx", "ppddpm-dygraph", "ppddpm-dp2", "ppddpm-static",
                            "diffusers", "diffusers-passive", "ppdiffusers"])
    p.add_argument("--task", required=True, choices=["sample_step", "train_step", "ddim"])
    p.add_argument("--arch", default="cifar", choices=["cifar", "small"])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ddim_steps", type=int, default=100)
    p.add_argument("--cache_dir", default=None)
    args = p.parse_args()
    info = {"framework": args.framework, "task": args.task, "batch": args.batch,
            "threads": args.threads, "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    run = {"ppddpm-dp2": run_ppddpm_dp, "ppddpm-static": run_ppddpm_static}.get(
        args.framework, run_ppddpm if args.framework.startswith("ppddpm") else run_peer)
    times = run(args, info)
    # peak RSS of the measuring process; for ppddpm-dp2 the sum over its two ranks
    rss = sum(info["maxrss_ranks_mb"]) if "maxrss_ranks_mb" in info else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    info.update(times=times, median_s=statistics.median(times), cpu_times=CPU_TIMES,
                cpu_median_s=statistics.median(CPU_TIMES), maxrss_mb=rss)
    sys.stdout.write("RESULT " + json.dumps(info) + "\n")


if __name__ == "__main__":
    main()
