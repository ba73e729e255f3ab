"""The command line shared by every run script: the original reproduction's flags, with
real booleans, each mapped onto a config key. A flag left out keeps the YAML value."""
from __future__ import annotations

import argparse

from .config import parse_bool

MODES = ("train", "resume", "convert", "denoise", "eval", "fid_stats")


def _bool(value: str) -> bool:
    try:
        return parse_bool(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# flag -> (config key or None, type, help). Defaults come from the YAML file.
CONFIG_FLAGS = {
    # data
    "data_dir": ("data.data_dir", str, "data set folder (CIFAR-10: holds cifar-10-python.tar.gz "
                 "or cifar-10-batches-py/; image sets: any tree of JPEG/PNG/WebP)"),
    "num_workers": ("data.num_workers", int, "data loader worker processes (0 loads in the main process)"),
    "image_size": ("data.image_size", int, "training image size for image-folder data sets"),
    # diffusion
    "beta_schedule": ("diffusion.beta_schedule", str, "linear | quad | const | jsd | warmup10 | "
                      "warmup50 | cosine | sigmoid"),
    "beta_start": ("diffusion.beta_start", float, "first beta of the schedule"),
    "beta_end": ("diffusion.beta_end", float, "last beta of the schedule"),
    "num_diffusion_steps": ("diffusion.num_diffusion_steps", int, "T, the number of diffusion steps"),
    "var_type": ("diffusion.var_type", str, "reverse-process variance: fixed_large (beta_t, the "
                 "paper's CIFAR-10 choice) | fixed_small (posterior) | learned | learned_range"),
    # training
    "batchsize": ("train.batchsize", int, "training batch size (global, over all ranks) and "
                  "sampling batch size (default sample.batchsize, else train.batchsize)"),
    "training_iters": ("train.training_iters", int, "total training iterations"),
    "lr": ("train.lr", float, "Adam learning rate after warm-up"),
    "warmup_steps": ("train.warmup_steps", int, "linear learning-rate warm-up iterations"),
    "ema_decay": ("train.ema_decay", float, "EMA decay of the weights (paper: 0.9999)"),
    "grad_clip": ("train.grad_clip", float, "clip the global gradient norm to this (0 disables)"),
    "seed": ("train.seed", int, "seed of the data order, timesteps, noise and dropout"),
    "sample_interval": ("train.sample_interval", int, "write a sample grid every N iterations (0: never)"),
    "ckpt_interval": ("train.ckpt_interval", int, "write a training checkpoint every N iterations"),
    "keep_last": ("train.keep_last", int, "keep only the newest N training checkpoints (0 keeps all)"),
    "accum_steps": ("train.accum_steps", int, "gradient accumulation: split each global batch "
                    "into this many micro-batches per rank (large batches on few cards)"),
    "amp": ("train.amp", str, "mixed precision on GPU: off | float16 (with loss scaling) | "
            "bfloat16; on the CPU Paddle keeps conv/matmul in float32 and says so"),
    "ckpt_dir": ("train.ckpt_dir", str, "folder for checkpoints and inference files"),
    "log_dir": ("train.log_dir", str, "folder for VisualDL logs (or scalars.csv without VisualDL)"),
    # sampling
    "sample_dir": ("sample.sample_dir", str, "folder for sample images"),
    "num_images": ("sample.num_images", str, "N-R-C: N images in a grid of R rows and C columns "
                   "(N must equal R*C), e.g. 64-8-8 or 400-20-20"),
    "sample_postfix": ("sample.sample_postfix", str, "samples go to {sample_dir}/sample_{postfix}.png"),
    "sampler": ("sample.sampler", str, "ddpm (ancestral) | ddim"),
    "stride": ("sample.stride", int, "DDIM: use every stride-th timestep (1000/10 = 100 steps)"),
    "ddim_steps": ("sample.num_steps", int, "DDIM: number of steps (instead of --stride)"),
    "eta": ("sample.eta", float, "DDIM eta: 0 is deterministic, 1 matches DDPM's posterior variance"),
    "skip": ("sample.skip", str, "DDIM timestep spacing: uniform | quadratic"),
    "respacing": ("sample.respacing", str, "DDPM on a subsequence: 'ddim50', '250' or '10,15,20'"),
    "sample_seed": ("sample.seed", int, "seed of the sampling noise (image i depends only on it and i)"),
    "clip_denoised": ("sample.clip_denoised", _bool, "clip the predicted x0 to the data range"),
}


def build_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", help="YAML config file (each run script has its own default)")
    p.add_argument("-o", "--override", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="set any config value, e.g. -o model.dropout=0.2 (repeatable)")
    p.add_argument("--mode", choices=MODES,
                   help="train: train from scratch; resume: continue training; convert: write "
                        "the EMA inference file of a training checkpoint; denoise: sample from "
                        "--pretrained_path; eval: FID/IS/precision/recall of --pretrained_path "
                        "or --samples; fid_stats: reference statistics of the training set")
    p.add_argument("--resume", type=_bool, default=False,
                   help="with --mode train, resume instead (the original's flag)")
    p.add_argument("--resume_ckpt_path", default=None,
                   help="training checkpoint to resume or convert (default: the latest in ckpt_dir)")
    p.add_argument("--pretrained_path", default=None,
                   help="inference file, training checkpoint or original .pdparam to sample from")
    p.add_argument("--sequence", type=_bool, default=False,
                   help="denoise: draw the progressive generation (predicted x0 over time, one "
                        "row per image) and an animated GIF instead of the final samples")
    p.add_argument("--sequence_every", type=int, default=None,
                   help="steps between frames of --sequence (default: about 20 frames)")
    p.add_argument("--save_individual", type=_bool, default=False,
                   help="denoise: also write every image as its own PNG under "
                        "{sample_dir}/{postfix}/")
    p.add_argument("--save_npz", type=_bool, default=False,
                   help="denoise: also write all images as uint8 NHWC in {sample_dir}/{postfix}.npz "
                        "(the format FID tools read)")
    p.add_argument("--convert_ema", type=_bool, default=True,
                   help="convert: write the EMA weights (False writes the raw weights)")
    p.add_argument("--loss_type", default=None,
                   help="noisepred (the original's name: eps prediction, L_simple) | mse | kl | hybrid")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--engine", choices=("auto", "onnxruntime", "inference", "dygraph"), default="auto",
                   help="denoise: run the network by ONNX Runtime (needs pip install "
                        "\"ppddpm[onnx]\"), the Paddle Inference predictor (both exported once, "
                        "cached in $PPDDPM_ENGINE_CACHE or ~/.cache/ppddpm/engines) or the dynamic "
                        "graph; auto: on the CPU ONNX Runtime when installed, else the predictor, "
                        "if the export works")
    p.add_argument("--conv_backend", choices=("auto", "onednn", "paddle"), default=None,
                   help="kernels of the convolutions in the dynamic graph (training, --engine "
                        "dygraph): oneDNN from the Paddle wheel, or Paddle's own; auto: oneDNN "
                        "when it loads (default: $PPDDPM_CONV_BACKEND or auto)")
    p.add_argument("--low_memory", type=_bool, default=False,
                   help="return freed tensors to the system at once (glibc malloc with a fixed "
                        "128 KiB mmap threshold, ppddpm/heap.py): lower peak memory (CIFAR-10 "
                        "training: 1.29 instead of 1.43 GiB) at about a third more time per step")
    for flag, (key, typ, text) in CONFIG_FLAGS.items():
        p.add_argument(f"--{flag}", type=typ, default=None, help=f"{text} [config: {key}]")
    from .evaluate import add_eval_args
    add_eval_args(p)
    return p


def overrides_from_args(args: argparse.Namespace) -> list:
    """``section.key=value`` strings for every config flag given on the command line."""
    out = []
    for flag, (key, _, _) in CONFIG_FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            out.append((key, value))
    if args.batchsize is not None:  # one flag for both, as in the original scripts
        out.append(("sample.batchsize", args.batchsize))
    if args.loss_type is not None:
        if args.loss_type == "noisepred":
            out += [("diffusion.mean_type", "eps"), ("diffusion.loss_type", "mse")]
        else:
            out.append(("diffusion.loss_type", args.loss_type))
    return out
