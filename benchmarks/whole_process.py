"""Whole-process sampling: one fresh process from a weights file on disk to images on disk,
for ppddpm (its command line, run_cifar10_ddim.py) and diffusers (UNet2DModel.from_pretrained
+ DDIMPipeline + PNG files). Used by bench_sampling.py --process.

  python benchmarks/whole_process.py save --framework ppddpm --arch cifar --out DIR
  python benchmarks/whole_process.py sample --framework diffusers --arch cifar --out DIR --n 16 --steps 10
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from worker import SMALL, UNET2D, UNET2D_SMALL  # noqa: E402


def save(args):
    """Random weights (every layer non-zero, so sampling does real work) in each format."""
    if args.framework.startswith("ppddpm"):
        import paddle
        from ppddpm.config import Config, ModelConfig
        from ppddpm.models import build_model
        from ppddpm.convert.pretrained import save_inference_file
        from ppddpm.diffusion.schedules import get_beta_schedule
        cfg = Config()
        cfg.model = ModelConfig(**(SMALL if args.arch == "small" else {}))
        paddle.seed(0)
        model = build_model(cfg.model)
        for p in model.parameters():
            if not float(p.abs().max()):
                p.set_value(paddle.randn(p.shape) * 0.02)
        save_inference_file(os.path.join(args.out, "net.pdparam"), model.state_dict(),
                            get_beta_schedule("linear", 1000, 1e-4, 0.02), {}, cfg)
    else:
        import diffusers.utils.import_utils as iu
        iu._torchvision_available = False
        import torch
        from diffusers import UNet2DModel
        torch.manual_seed(0)
        unet = UNet2DModel(**(UNET2D_SMALL if args.arch == "small" else UNET2D))
        unet.save_pretrained(os.path.join(args.out, "unet"))


def sample_diffusers(args):
    import diffusers.utils.import_utils as iu
    iu._torchvision_available = False
    import torch
    from diffusers import DDIMPipeline, DDIMScheduler, UNet2DModel
    from PIL import Image
    torch.manual_seed(0)
    unet = UNet2DModel.from_pretrained(os.path.join(args.out, "unet")).eval()
    sched = DDIMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02,
                          beta_schedule="linear", clip_sample=True)
    pipe = DDIMPipeline(unet=unet, scheduler=sched)
    pipe.set_progress_bar_config(disable=True)
    out = os.path.join(args.out, "diffusers_images")
    os.makedirs(out, exist_ok=True)
    k = 0
    for start in range(0, args.n, args.batch):
        images = pipe(batch_size=min(args.batch, args.n - start), num_inference_steps=args.steps,
                      eta=0.0, output_type="np").images
        for im in images:
            arr = np.clip(np.round(im * 255), 0, 255).astype(np.uint8)
            Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(
                os.path.join(out, f"{k:05d}.png"))
            k += 1


def ppddpm_command(args):
    """The command a user types (argv for a fresh interpreter)."""
    rows = {16: "16-4-4", 64: "64-8-8", 500: "500-20-25"}.get(args.n, f"{args.n}-1-{args.n}")
    return [sys.executable, os.path.join(ROOT, "run_cifar10_ddim.py"), "--mode", "denoise",
            "--pretrained_path", os.path.join(args.out, "net.pdparam"), "--num_images", rows,
            "--ddim_steps", str(args.steps), "--batchsize", str(args.batch), "--quiet",
            "--engine", args.engine, "--sample_dir", os.path.join(args.out, "ppddpm_images")]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["save", "sample"])
    p.add_argument("--framework", required=True)
    p.add_argument("--arch", default="cifar", choices=["cifar", "small"])
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--engine", default="auto")
    args = p.parse_args()
    if args.what == "save":
        save(args)
    elif args.framework.startswith("diffusers"):
        sample_diffusers(args)
    else:
        os.execv(sys.executable, ppddpm_command(args))


if __name__ == "__main__":
    main()
