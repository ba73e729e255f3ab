"""Where one training iteration of a small UNet spends its time, measured inside ppddpm's own
Trainer (the code ``--mode train`` runs), part by part.

The model is issue 23's: 16x16 RGB, ch 32, ch_mult [1, 2], one residual block, attention only
in the middle block (652,195 parameters), batch 64, Adam 2e-4, gradient clipping 1.0, EMA
0.99. Each part of ``Trainer.train_step`` and of the loop around it is wrapped in a timer
(wall and CPU time); what no timer covers is the loop's own Python. A second table times,
on the same tensors, the per-iteration updates as they were before issue 23 and as they are
now (Adam per tensor / merged, EMA per tensor / flat, the finiteness check), and the fixed
cost of one dygraph operator (a scalar add repeated). ``--ops`` adds Paddle's profiler
table of the operators of 3 iterations (forward and backward kernels, and their count).

  python benchmarks/profile_training.py                     # in-memory data (the trainer's fast path)
  python benchmarks/profile_training.py --data png          # a folder of 16x16 PNGs, decoded each epoch
  python benchmarks/profile_training.py --arch mnist        # configs/mnist.yaml's UNet at batch 64
"""
import argparse
import collections
import os
import statistics
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

ARCHS = {   # model overrides, image size, channels, batch
    "digits": (dict(arch="unet", ch=32, ch_mult=[1, 2], num_res_blocks=1, attn_resolutions=[],
                    dropout=0.0, in_channels=3, out_channels=3, resolution=16), 16, 3, 64),
    "mnist": (None, 28, 1, 64),      # configs/mnist.yaml as it is
    "cifar10": (None, 32, 3, 8),     # configs/cifar10.yaml as it is
}


def build_config(arch, iters, workers, data_dir):
    from ppddpm.config.schema import load_config
    from ppddpm.config import ModelConfig
    overrides, size, channels, batch = ARCHS[arch]
    cfg = load_config(os.path.join(os.path.dirname(HERE), "configs",
                                   {"digits": "celeba_hq", "mnist": "mnist", "cifar10": "cifar10"}[arch] + ".yaml"))
    if overrides:
        cfg.model = ModelConfig(**{**cfg.model.__dict__, **overrides, "norm_groups": 32})
    t = cfg.train
    t.batchsize, t.training_iters, t.sample_interval, t.ckpt_interval = batch, iters, 0, 0
    t.lr, t.grad_clip, t.warmup_steps = 2e-4, 1.0, 0
    t.ema_decay = 0.99 if arch == "digits" else t.ema_decay
    t.log_dir = os.path.join(data_dir, "log")
    t.ckpt_dir = os.path.join(data_dir, "ckpts")
    cfg.data.image_size, cfg.data.channels, cfg.data.num_workers = size, channels, workers
    cfg.data.data_dir, cfg.data.dataset, cfg.data.random_flip = os.path.join(data_dir, "img"), "celeba_hq", True
    cfg.data.class_level = 1
    return cfg


def write_pngs(folder, n, size, channels):
    from PIL import Image
    os.makedirs(folder, exist_ok=True)
    rs = np.random.RandomState(0)
    for i in range(n):
        arr = rs.randint(0, 256, (size, size, channels) if channels == 3 else (size, size), np.uint8)
        Image.fromarray(arr).save(os.path.join(folder, f"{i:05d}.png"))


class Timers:
    def __init__(self):
        self.wall = collections.defaultdict(float)
        self.cpu = collections.defaultdict(float)
        self.active = False

    def wrap(self, name, fn):
        def timed(*a, **k):
            if not self.active:
                return fn(*a, **k)
            c0, t0 = time.process_time(), time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.wall[name] += time.perf_counter() - t0
                self.cpu[name] += time.process_time() - c0
        return timed


def op_overhead(paddle, n=2000):
    """Wall seconds of one tiny dygraph op (a scalar add): the fixed cost of each operator."""
    a = paddle.ones([1])
    for _ in range(100):
        a + 1.0
    t0 = time.perf_counter()
    for _ in range(n):
        a + 1.0
    return (time.perf_counter() - t0) / n


def candidates(paddle, trainer, reps):
    """The per-iteration updates before and after issue 23, on the trainer's own parameters
    and gradients (one backward first): wall ms of each."""
    from ppddpm.train.ema import flat_parameters
    from ppddpm.train.finite import all_finite
    model = trainer.model
    params = [p for p in model.parameters() if not p.stop_gradient]
    x = paddle.randn([trainer.micro_batch, *trainer.cfg_shape])
    t = paddle.randint(0, 1000, [trainer.micro_batch])
    trainer.diffusion.training_losses(model, x, t)["loss"].mean().backward()
    grads = [(p, p.grad) for p in params]
    clip = paddle.nn.ClipGradByGlobalNorm(1.0)
    shadows = [p.detach().clone() for p in params]
    out = {}

    def bench(name, fn):
        fn()
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        out[name] = 1e3 * statistics.median(ts)

    @paddle.no_grad()
    def ema_per_tensor():
        for s, p in zip(shadows, params):
            s.set_value(s * 0.99 + p.detach() * 0.01)
    bench("gradient clipping by the global norm (Paddle's, per tensor; unchanged)", lambda: clip(grads))
    bench("finiteness, before: a sum per tensor + add_n + float", lambda: all_finite(params))
    bench("finiteness, now: flatten once + one sum + float", lambda: all_finite([flat_parameters(model)]))
    bench("EMA, before: set_value(s * d + w * (1 - d)) per tensor", ema_per_tensor)
    flat = flat_parameters(model)
    bench("EMA, now: on one flat tensor (given the flat copy above)", lambda: trainer.ema.update(flat))
    for multi in (False, True):
        opt = paddle.optimizer.Adam(2e-4, parameters=params, use_multi_tensor=multi)
        bench(f"Adam step, use_multi_tensor={multi} ({'now' if multi else 'before'})", opt.step)
    out["one tiny op (scalar add), per op"] = 1e3 * op_overhead(paddle)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="digits", choices=sorted(ARCHS))
    p.add_argument("--iters", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--data", default="memory", choices=["memory", "png"])
    p.add_argument("--num_workers", type=int, default=0)
    p.add_argument("--images", type=int, default=1024)
    p.add_argument("--conv_backend", default="auto")
    p.add_argument("--ops", action="store_true", help="also print paddle.profiler's operator table")
    args = p.parse_args()
    import paddle
    from ppddpm.data import build_dataset, build_loader
    from ppddpm.diffusion import GaussianDiffusion
    from ppddpm.models import build_model, count_parameters
    from ppddpm.models.conv import set_conv_backend
    from ppddpm.runtime.device import use_compute_threads
    import ppddpm.train.trainer as trainer_mod
    from ppddpm.cli.train_mode import training_loader

    threads = use_compute_threads()
    set_conv_backend(args.conv_backend)
    tmp = tempfile.mkdtemp(prefix="ppddpm-profile-")
    cfg = build_config(args.arch, args.warmup + args.iters, args.num_workers, tmp)
    write_pngs(os.path.join(tmp, "img"), args.images, cfg.data.image_size, cfg.data.channels)
    dataset = build_dataset(cfg.data)
    paddle.seed(0)
    model = build_model(cfg.model)
    diffusion = GaussianDiffusion.from_config(cfg.diffusion)
    trainer = trainer_mod.Trainer(cfg, model, diffusion, dataset, progress=False)
    trainer.cfg_shape = [cfg.data.channels, cfg.data.image_size, cfg.data.image_size]
    T = Timers()
    # wrap every part of the iteration
    trainer.next_batches = T.wrap("data: next batch (loader, decode, flip, collate)", trainer.next_batches)
    trainer.draw = T.wrap("draw t and noise (numpy RNG, to_tensor)", trainer.draw)
    diffusion.training_losses = T.wrap("forward (q_sample, UNet, loss)", diffusion.training_losses)
    trainer.amp.backward = T.wrap("backward", trainer.amp.backward)
    trainer.amp.step = T.wrap("optimizer step (clip + Adam)", trainer.amp.step)
    trainer.optim.clear_grad = T.wrap("clear_grad", trainer.optim.clear_grad)
    trainer_mod.all_finite = T.wrap("weight finiteness check (host sync)", trainer_mod.all_finite)
    trainer.ema.update = T.wrap("EMA update", trainer.ema.update)
    trainer.lr_sched.step = T.wrap("lr schedule step", trainer.lr_sched.step)
    trainer.log_iteration = T.wrap("logging (CSV, bar, lr)", trainer.log_iteration)
    trainer.write_periodic_outputs = T.wrap("periodic outputs (none due)", trainer.write_periodic_outputs)
    step = trainer.train_step
    trainer.train_step = T.wrap("train_step (all of it)", step)
    # the loss read: float(loss) inside train_step
    real_float = paddle.Tensor.__float__
    paddle.Tensor.__float__ = T.wrap("loss to host (float(loss))", real_float)
    trainer.run_iterations = T.wrap("loop", trainer.run_iterations)
    loader = training_loader(cfg, dataset, trainer)
    if args.data == "png":   # the per-item path: decode every PNG each epoch
        loader = build_loader(dataset, trainer.micro_batch, num_workers=args.num_workers,
                              seed=0, infinite=True, in_memory=False)
    # warm-up iterations untimed, then the timed ones (the final saves are not timed)
    cfg.train.training_iters = args.warmup
    trainer.fit(loader)
    T.active = True
    cfg.train.training_iters = args.warmup + args.iters
    trainer.fit(loader)
    T.active = False
    wall, cpu = T.wall.pop("loop"), T.cpu.pop("loop")
    paddle.Tensor.__float__ = real_float
    n = args.iters
    print(f"# profile: {args.arch} UNet, {count_parameters(model):,} parameters, batch "
          f"{cfg.train.batchsize}, data {args.data} (num_workers {args.num_workers}), conv "
          f"{args.conv_backend}, {threads} threads, {n} iterations; load "
          f"{open('/proc/loadavg').read().split()[:3]}")
    print(f"| part of one iteration | wall ms | CPU ms | share of wall |")
    print("| --- | --- | --- | --- |")
    inner = T.wall["train_step (all of it)"]
    for name in T.wall:
        if name == "train_step (all of it)":
            continue
        print(f"| {name} | {1e3 * T.wall[name] / n:.1f} | {1e3 * T.cpu[name] / n:.1f} | "
              f"{100 * T.wall[name] / wall:.0f}% |")
    parts_in_step = sum(v for k, v in T.wall.items() if k not in (
        "train_step (all of it)", "data: next batch (loader, decode, flip, collate)",
        "logging (CSV, bar, lr)", "periodic outputs (none due)"))
    print(f"| rest of train_step (seed, labels, Python) | {1e3 * (inner - parts_in_step) / n:.1f} | | "
          f"{100 * (inner - parts_in_step) / wall:.0f}% |")
    outer = wall - inner - sum(T.wall[k] for k in ("data: next batch (loader, decode, flip, collate)",
                                                   "logging (CSV, bar, lr)", "periodic outputs (none due)"))
    print(f"| rest of the loop (fit, Python) | {1e3 * outer / n:.1f} | | {100 * outer / wall:.0f}% |")
    print(f"| **whole iteration** | **{1e3 * wall / n:.1f}** | **{1e3 * cpu / n:.1f}** | 100% |")
    print()
    print("| update, on the same parameters | wall ms |")
    print("| --- | --- |")
    for name, ms in candidates(paddle, trainer, reps=20).items():
        print(f"| {name} | {ms:.3f} |")
    if args.ops:
        operator_table(paddle, trainer, loader)


def operator_table(paddle, trainer, loader, steps=3):
    """paddle.profiler's summary of ``steps`` training steps (CPU time per operator)."""
    import paddle.profiler as profiler
    batches = iter(loader)
    prof = profiler.Profiler(targets=[profiler.ProfilerTarget.CPU])
    prof.start()
    for _ in range(steps):
        trainer.train_step([next(batches)[0]])
        prof.step()
    prof.stop()
    prof.summary(sorted_by=profiler.SortedKeys.CPUTotal, op_detail=False, thread_sep=False,
                 time_unit="ms")


if __name__ == "__main__":
    main()
