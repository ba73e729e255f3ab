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


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {number}")
    return number


# flag -> (config key or None, type, help). Defaults come from the YAML file.
CONFIG_FLAGS = {
    # data
    "data_dir": ("data.data_dir", str, "data set folder (CIFAR-10: holds cifar-10-python.tar.gz "
                 "or cifar-10-batches-py/; image sets: any tree of JPEG/PNG/WebP)"),
    "num_workers": ("data.num_workers", int, "data loader worker processes (0 loads in the main process)"),
    "image_size": ("data.image_size", int, "image size of the data (image folders: resize and "
                   "crop to it) and of the model: also sets model.resolution"),
    # diffusion
    "beta_schedule": ("diffusion.beta_schedule", str, "linear | quad | const | warmup10 | warmup50 | "
                      "cosine | sigmoid (jsd is refused: its last beta is 1)"),
    "beta_start": ("diffusion.beta_start", float, "first beta of the schedule"),
    "beta_end": ("diffusion.beta_end", float, "last beta of the schedule"),
    "num_diffusion_steps": ("diffusion.num_diffusion_steps", int, "T, the number of diffusion steps"),
    "var_type": ("diffusion.var_type", str, "reverse-process variance: fixed_large (beta_t, the "
                 "paper's CIFAR-10 choice) | fixed_small (posterior) | learned | learned_range"),
    # training
    "batchsize": ("train.batchsize", int, "training batch size (global, over all ranks) and "
                  "sampling batch size (without it, sampling uses sample.batchsize when set, "
                  "else train.batchsize)"),
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
                   "(N must equal R*C), e.g. 64-8-8 or 400-20-20; or just N (see --nrow)"),
    "sample_postfix": ("sample.sample_postfix", str, "samples go to {sample_dir}/sample_{postfix}.png"),
    "sampler": ("sample.sampler", str, "ddpm (ancestral) | ddim | dpm_solver++ | dpm_solver | "
                "unipc (fast ODE solvers: README 'Fast samplers')"),
    "stride": ("sample.stride", int, "DDIM: use every stride-th timestep (1000/10 = 100 steps)"),
    "ddim_steps": ("sample.num_steps", int, "DDIM: number of steps (instead of --stride)"),
    "eta": ("sample.eta", float, "DDIM eta: 0 is deterministic, 1 matches DDPM's posterior variance"),
    "skip": ("sample.skip", str, "DDIM timestep spacing: uniform | quadratic (also linspace | "
             "trailing | logsnr; --spacing overrides it)"),
    "respacing": ("sample.respacing", str, "DDPM on a subsequence: 'ddim50', '250' or '10,15,20'"),
    "sample_seed": ("sample.seed", int, "seed of the sampling noise (image i depends only on it and i)"),
    "clip_denoised": ("sample.clip_denoised", _bool, "clip the predicted x0 to the data range"),
    # class-conditional models (classifier-free guidance)
    "class_label": ("sample.class_label", str, "conditional models: the class to sample, by "
                    "name or index, a comma list (one block of grid rows each), or 'all' (with "
                    "--num_images 100-10-10: one row per class of 10)"),
    "guidance_scale": ("sample.guidance_scale", float, "classifier-free guidance w: eps = (1+w) "
                       "eps(x, y) - w eps(x, no label); 0 samples the conditional model"),
    "conditional": ("train.conditional", _bool, "train a class-conditional model on the data "
                    "set's labels (sets model.num_classes from it)"),
    "p_uncond": ("train.p_uncond", float, "conditional training: probability that a label is "
                 "replaced by 'no label', which trains the unconditional half of guidance"),
    "steps": ("sample.num_steps", int, "number of sampling steps (= network evaluations) of "
              "ddim, dpm_solver++, dpm_solver and unipc; the same as --ddim_steps"),
    "order": ("sample.order", int, "order of dpm_solver++ / dpm_solver / unipc: 1 (= DDIM), "
              "2 (default) or 3; unipc's corrector adds one"),
    "clipped_eps": ("sample.clipped_eps", _bool, "DDIM and the solvers: re-derive eps from the "
                    "clipped x0 (improved-diffusion's DDIM) instead of keeping the model's eps"),
    "spacing": ("sample.spacing", str, "timestep grid of ddim and the solvers: uniform (DDIM's) | "
                "quadratic | linspace | trailing | logsnr (ppddpm/samplers/spacing.py); default: "
                "--skip for ddim, logsnr for dpm_solver++ / dpm_solver / unipc"),
}


def build_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", help="YAML config file")
    p.add_argument("-o", "--override", action="extend", nargs="+", default=[],
                   metavar="SECTION.KEY=VALUE",
                   help="set any config value: -o model.dropout=0.2 train.lr=1e-4 (several "
                        "after one -o, as in PaddleDetection/PaddleSeg/PaddleClas; -o repeats too)")
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
    p.add_argument("--sequence_every", "--interval", type=int, default=None,
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
        p.add_argument(f"--{flag}", type=typ, default=None, help=text)  # cli_help adds the key
    add_eval_args(p)
    p.add_argument("--convert_format", choices=("pdparam", "safetensors"), default=None,
                   help="convert: write the inference file as a paddle.save .pdparam (loadable "
                        "by the original reproduction) or as .safetensors (no pickle: safe to "
                        "share); default: the output name's extension (.pdparam)")
    add_output_args(p)
    p.add_argument("--overwrite", type=_bool, default=False,
                   help="train: start afresh in a --ckpt_dir that already holds training "
                        "checkpoints of this prefix, deleting them (without it such a run is "
                        "refused; continue it with --mode resume instead)")
    return p


def add_output_args(p: argparse.ArgumentParser) -> None:
    """Where the process runs and how denoise writes its grid (ppddpm/grid_output.py)."""
    g = p.add_argument_group("device and sample output")
    g.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                   help="where to run; auto: the GPU when Paddle sees one, else the CPU")
    g.add_argument("--nrow", type=_positive_int, default=None,
                   help="denoise: images per row of the grid; the rows follow from N of "
                        "--num_images (which may then be just N, e.g. --num_images 50 --nrow 10; "
                        "default: C of N-R-C, or a near-square grid for a bare N)")
    g.add_argument("--to_grayscale", type=_bool, nargs="?", const=True, default=False,
                   help="denoise: write the PNGs (grid, --save_individual, --sequence) in grey "
                        "(ITU-R 601 luma); the .npz keeps the model's channels")
    g.add_argument("--save_path", default=None,
                   help="denoise: write the grid (with --sequence: the sequence PNG, its GIF "
                        "and x_t PNG beside it) to this file instead of "
                        "{sample_dir}/sample_{postfix}.png")
    g.add_argument("--show", type=_bool, nargs="?", const=True, default=False,
                   help="denoise: open the grid in an image viewer when there is a display "
                        "($DISPLAY or $WAYLAND_DISPLAY, macOS, Windows); otherwise say where it is")


def was_given(args: argparse.Namespace, dest: str) -> bool:
    """Whether ``--dest`` was typed on the command line (``args.given``, cli_parse.py); for a
    namespace parsed without it, whether the flag holds a value."""
    given = getattr(args, "given", None)
    return dest in given if given is not None else getattr(args, dest, None) is not None


def _flag_settings(args: argparse.Namespace):
    """``(section.key, value, flag)`` for every config flag given on the command line."""
    for flag, (key, _, _) in CONFIG_FLAGS.items():
        if was_given(args, flag):
            yield key, getattr(args, flag), flag
    if was_given(args, "batchsize"):  # one flag for both, as in the original scripts
        yield "sample.batchsize", args.batchsize, "batchsize"
    if was_given(args, "image_size"):  # the data's size is the model's resolution
        yield "model.resolution", args.image_size, "image_size"
    if was_given(args, "loss_type"):
        if args.loss_type == "noisepred":
            yield "diffusion.mean_type", "eps", "loss_type"
            yield "diffusion.loss_type", "mse", "loss_type"
        else:
            yield "diffusion.loss_type", args.loss_type, "loss_type"


def overrides_from_args(args: argparse.Namespace) -> list:
    """``(section.key, value)`` for every config flag given on the command line."""
    return [(key, value) for key, value, _ in _flag_settings(args)] + model_follows_data(args.override)


def explicit_settings(args: argparse.Namespace) -> dict:
    """``{section.key: how the command line set it}`` for every config key given by a flag or
    ``-o``, e.g. ``{"diffusion.num_diffusion_steps": "--num_diffusion_steps 50"}``."""
    out = {item.split("=", 1)[0].strip(): f"-o {item}" for item in args.override}
    for key, _, flag in _flag_settings(args):
        out[key] = f"--{flag} {getattr(args, flag)}"
    return out


def model_follows_data(overrides) -> list:
    """-o data.channels=C / data.image_size=S also set the model's in/out channels /
    resolution, unless the same command line sets those model keys itself."""
    given = {}
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if sep:
            given[key.strip()] = value.strip()
    out = []
    if "data.channels" in given and not {"model.in_channels", "model.out_channels"} & set(given):
        out += [("model.in_channels", given["data.channels"]),
                ("model.out_channels", given["data.channels"])]
    if "data.image_size" in given and "model.resolution" not in given:
        out.append(("model.resolution", given["data.image_size"]))
    return out


def add_eval_args(p) -> None:
    """--mode eval / fid_stats flags (read by cli.eval_options into evaluate.EvalOptions)."""
    from .evaluate import PUBLISHED_NUM_SAMPLES
    from .metrics.inception_weights import ENV_VAR, WEIGHTS_FILE
    g = p.add_argument_group("evaluation (--mode eval | fid_stats)")
    g.add_argument("--inception_weights", default=None,
                   help=f"pytorch-fid's FID Inception weights {WEIGHTS_FILE} (read without "
                        f"PyTorch, converted once to a .pdparams cache); default: ${ENV_VAR}")
    g.add_argument("--num_samples", type=int, default=PUBLISHED_NUM_SAMPLES,
                   help="eval: images to generate from --pretrained_path (published numbers "
                        "use 50000)")
    g.add_argument("--fid_stats", default=None,
                   help="reference statistics .npz (ppddpm's or pytorch-fid's mu/sigma); "
                        "fid_stats writes it there, eval computes it there if it is missing. "
                        "Default: {data_dir}/fid_stats_{dataset}_{image_size}_train.npz")
    g.add_argument("--samples", default=None,
                   help="eval: a folder of images or a uint8 NHWC .npz (arr_0) to evaluate "
                        "instead of generating from a checkpoint")
    g.add_argument("--eval_out", default=None,
                   help="eval: JSON file for the results (default: {sample_dir}/eval_*.json)")
    g.add_argument("--inception_batch", type=int, default=50,
                   help="images per Inception forward pass")
    g.add_argument("--metrics", choices=("fid", "bpd"), default="fid",
                   help="eval: fid (FID/IS/precision/recall/KID of samples) or bpd (the "
                        "test-set negative log-likelihood bound in bits/dim of "
                        "--pretrained_path, DDPM Table 2; ppddpm/likelihood.py)")
