"""One side of bench_training_loop.py: whole training iterations in a fresh process; prints
one ``RESULT {json}`` line.

  ppddpm     /work/venv      its own Trainer (what ``--mode train`` runs): the data loader over
                             a folder of PNGs, the draws, L_simple, backward, gradient
                             clipping, Adam, the finiteness check, the EMA and the logging
  diffusers  /work/venv-ref  UNet2DModel in a plain PyTorch loop: batches indexed from a uint8
                             tensor in memory with random flips, DDPMScheduler.add_noise, MSE,
                             backward, clip_grad_norm_, Adam, an EMA (lerp_ per tensor), and
                             float(loss) read each iteration

Both get the same network (the same parameter count, printed), batch, Adam 2e-4, clipping at
1.0, the same EMA decay and the same images (numpy RandomState(0)).
"""
import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# arch -> (ppddpm config file, model overrides, image size, channels, EMA decay, diffusers UNet2DModel)
_CIFAR_UNET2D = dict(sample_size=32, in_channels=3, out_channels=3, layers_per_block=2,
                     block_out_channels=(128, 256, 256, 256), norm_eps=1e-6, dropout=0.1,
                     down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
                     up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
                     attention_head_dim=None, flip_sin_to_cos=False, freq_shift=1, downsample_padding=0)
ARCHS = {
    # issue 23's digits UNet: 16x16 RGB, ch 32, [1, 2], one block, no attention but the middle's
    "digits": ("celeba_hq", dict(arch="unet", ch=32, ch_mult=[1, 2], num_res_blocks=1,
                                 attn_resolutions=[], dropout=0.0, in_channels=3, out_channels=3,
                                 resolution=16), 16, 3, 0.99,
               dict(_CIFAR_UNET2D, sample_size=16, layers_per_block=1, block_out_channels=(32, 64),
                    dropout=0.0, down_block_types=("DownBlock2D", "DownBlock2D"),
                    up_block_types=("UpBlock2D", "UpBlock2D"))),
    # configs/mnist.yaml's UNet: 28x28 grey, ch 32, [1, 2, 2], two blocks, attention at 14, GN(8)
    "mnist": ("mnist", None, 28, 1, 0.999,
              dict(_CIFAR_UNET2D, sample_size=28, in_channels=1, out_channels=1, block_out_channels=(32, 64, 64),
                   norm_num_groups=8, down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
                   up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"))),
    # configs/cifar10.yaml's UNet (the official DDPM CIFAR-10 network, 35.7M parameters)
    "cifar10": ("cifar10", None, 32, 3, 0.9999, _CIFAR_UNET2D),
}


def images(n, size, channels):
    """uint8 [n, C, S, S]: the same pseudo-random images on both sides."""
    return np.random.RandomState(0).randint(0, 256, (n, channels, size, size)).astype(np.uint8)


def timed_iterations(step, warmup, iters):
    """Wall and process-CPU seconds of each of ``iters`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        step()
    walls, cpus = [], []
    for _ in range(iters):
        c0, t0 = time.process_time(), time.perf_counter()
        step()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return walls, cpus


def run_ppddpm(args, info):
    from PIL import Image
    import paddle
    from ppddpm.cli.train_mode import training_loader
    from ppddpm.config import ModelConfig
    from ppddpm.config.schema import load_config
    from ppddpm.data import build_dataset
    from ppddpm.diffusion import GaussianDiffusion
    from ppddpm.models import build_model, count_parameters
    from ppddpm.runtime.device import use_compute_threads
    from ppddpm.train.trainer import Trainer
    name, overrides, size, channels, decay, _ = ARCHS[args.arch]
    info["threads"] = use_compute_threads()
    tmp = tempfile.mkdtemp(prefix="ppddpm-trainloop-")
    folder = os.path.join(tmp, "img")
    os.makedirs(folder)
    for i, im in enumerate(images(args.images, size, channels)):
        Image.fromarray(im[0] if channels == 1 else im.transpose(1, 2, 0)).save(
            os.path.join(folder, f"{i:05d}.png"))
    cfg = load_config(os.path.join(ROOT, "configs", name + ".yaml"))
    if overrides:
        cfg.model = ModelConfig(**{**cfg.model.__dict__, **overrides})
    cfg.data.dataset, cfg.data.data_dir, cfg.data.image_size = "celeba_hq", folder, size
    cfg.data.channels, cfg.data.class_level, cfg.data.random_flip = channels, 1, True
    if args.num_workers is not None:
        cfg.data.num_workers = args.num_workers
    t = cfg.train
    t.batchsize, t.lr, t.grad_clip, t.ema_decay = args.batch, 2e-4, 1.0, decay
    t.training_iters, t.sample_interval, t.ckpt_interval = 10 ** 9, 0, 0
    t.log_dir, t.ckpt_dir = os.path.join(tmp, "log"), os.path.join(tmp, "ckpts")
    dataset = build_dataset(cfg.data)
    paddle.seed(0)
    model = build_model(cfg.model)
    info["params"] = count_parameters(model)
    trainer = Trainer(cfg, model, GaussianDiffusion.from_config(cfg.diffusion), dataset, progress=False)
    batches = iter(training_loader(cfg, dataset, trainer))
    info["config"] = {"num_workers": cfg.data.num_workers}
    # the loop of Trainer.run_iterations, one iteration per call (no bar: a redirected log)
    from tqdm import tqdm
    from ppddpm.train.logger import RunLogger
    trainer.logger = RunLogger(t.log_dir)
    trainer.model.train()
    bar = tqdm(disable=True)
    losses = []

    def step():
        micro = trainer.next_batches(batches, t.accum_steps)
        loss = trainer.train_step([b[0] for b in micro])
        trainer.log_iteration(loss, bar, 0.0)
        losses.append(loss)
    walls, cpus = timed_iterations(step, args.warmup, args.iters)
    trainer.logger.close()
    info["losses"] = losses[-3:]
    return walls, cpus


def run_diffusers(args, info):
    import diffusers.utils.import_utils as iu
    iu._torchvision_available = False   # a torchvision built for another torch breaks the import
    import torch
    from diffusers import DDPMScheduler, UNet2DModel
    _, _, size, channels, decay, unet_kwargs = ARCHS[args.arch]
    torch.set_num_threads(args.threads)
    info["threads"] = args.threads
    torch.manual_seed(0)
    unet = UNet2DModel(**unet_kwargs)
    info["params"] = sum(p.numel() for p in unet.parameters())
    ema = [p.detach().clone() for p in unet.parameters()]
    sched = DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
    opt = torch.optim.Adam(unet.parameters(), lr=2e-4)
    data = torch.from_numpy(images(args.images, size, channels))
    gen = torch.Generator().manual_seed(0)
    unet.train()
    losses = []
    state = {"perm": torch.randperm(len(data), generator=gen), "pos": 0}

    def next_batch():
        if state["pos"] + args.batch > len(data):
            state["perm"], state["pos"] = torch.randperm(len(data), generator=gen), 0
        idx = state["perm"][state["pos"]:state["pos"] + args.batch]
        state["pos"] += args.batch
        x = data[idx].float() / 127.5 - 1.0
        flip = torch.rand(args.batch, generator=gen) < 0.5
        return torch.where(flip[:, None, None, None], x.flip(3), x)

    def step():
        x0 = next_batch()
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, 1000, (args.batch,), generator=gen)
        loss = ((unet(sched.add_noise(x0, noise, t), t).sample - noise) ** 2).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        with torch.no_grad():
            for s, p in zip(ema, unet.parameters()):
                s.lerp_(p, 1.0 - decay)
        losses.append(float(loss))
    walls, cpus = timed_iterations(step, args.warmup, args.iters)
    info["version"] = f"torch {torch.__version__}"
    info["losses"] = losses[-3:]
    return walls, cpus


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--framework", required=True, choices=["ppddpm", "diffusers"])
    p.add_argument("--arch", required=True, choices=sorted(ARCHS))
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--images", type=int, default=1024)
    p.add_argument("--num_workers", type=int, default=None,
                   help="ppddpm's data.num_workers (default: the config's)")
    args = p.parse_args()
    info = {"framework": args.framework, "arch": args.arch, "batch": args.batch}
    walls, cpus = (run_ppddpm if args.framework == "ppddpm" else run_diffusers)(args, info)
    info.update(times=walls, cpu_times=cpus, median_s=statistics.median(walls),
                cpu_median_s=statistics.median(cpus),
                maxrss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
    sys.stdout.write("RESULT " + json.dumps(info) + "\n")


if __name__ == "__main__":
    main()
