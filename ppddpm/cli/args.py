"""The command line shared by every run script: the original reproduction's flags, with
real booleans, each mapped onto a config key (config/flags.py). A flag left out keeps the
YAML value."""
from __future__ import annotations

import argparse

from ..config import parse_bool
from ..config.flags import CONFIG_FLAGS
from ..engines import ENGINE_KINDS
from ..evaluate.metrics import PUBLISHED_NUM_SAMPLES
from ..evaluate.metrics.inception_weights import ENV_VAR, WEIGHTS_FILE
from ..models.conv import BACKENDS as CONV_BACKENDS
from ..runtime.device import DEVICES

MODES = ("train", "resume", "convert", "denoise", "eval", "fid_stats")


def bool_flag(value: str) -> bool:
    """The type of every true/false flag (``--help`` shows them as ``true|false``)."""
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
    p.add_argument("--resume", type=bool_flag, default=False,
                   help="with --mode train, resume instead (the original's flag)")
    p.add_argument("--resume_ckpt_path", default=None,
                   help="training checkpoint to resume or convert (default: the latest in ckpt_dir)")
    p.add_argument("--pretrained_path", default=None,
                   help="inference file, training checkpoint or original .pdparam to sample from")
    p.add_argument("--sequence", type=bool_flag, default=False,
                   help="denoise: draw the progressive generation (predicted x0 over time, one "
                        "row per image) and an animated GIF instead of the final samples")
    p.add_argument("--sequence_every", "--interval", type=int, default=None,
                   help="steps between frames of --sequence (default: about 20 frames)")
    p.add_argument("--save_individual", type=bool_flag, default=False,
                   help="denoise: also write every image as its own PNG under "
                        "{sample_dir}/{postfix}/")
    p.add_argument("--save_npz", type=bool_flag, default=False,
                   help="denoise: also write all images as uint8 NHWC in {sample_dir}/{postfix}.npz "
                        "(the format FID tools read)")
    p.add_argument("--convert_ema", type=bool_flag, default=True,
                   help="convert: write the EMA weights (False writes the raw weights)")
    p.add_argument("--loss_type", default=None,
                   help="noisepred (the original's name: eps prediction, L_simple) | mse | kl | hybrid | mse_vb | rescaled_kl")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--engine", choices=ENGINE_KINDS, default="auto",
                   help="denoise: run the network by ONNX Runtime (needs pip install "
                        "\"ppddpm[onnx]\"), the Paddle Inference predictor (both exported once, "
                        "cached in $PPDDPM_ENGINE_CACHE or ~/.cache/ppddpm/engines) or the dynamic "
                        "graph; auto: on the CPU ONNX Runtime when installed, else the predictor, "
                        "if the export works")
    p.add_argument("--conv_backend", choices=CONV_BACKENDS, default=None,
                   help="kernels of the convolutions in the dynamic graph (training, --engine "
                        "dygraph): oneDNN from the Paddle wheel, or Paddle's own; auto: oneDNN "
                        "when it loads (default: $PPDDPM_CONV_BACKEND or auto)")
    p.add_argument("--low_memory", type=bool_flag, default=False,
                   help="return freed tensors to the system at once (glibc malloc with a fixed "
                        "128 KiB mmap threshold, ppddpm/runtime/heap.py): a lower peak memory "
                        "for more time per step (benchmarks/RESULTS.md)")
    for flag, (key, typ, text) in CONFIG_FLAGS.items():   # parse.py adds default and key
        p.add_argument(f"--{flag}", type=bool_flag if typ is bool else typ, default=None, help=text)
    add_eval_args(p)
    p.add_argument("--convert_format", choices=("pdparam", "safetensors"), default=None,
                   help="convert: write the inference file as a paddle.save .pdparam (loadable "
                        "by the original reproduction) or as .safetensors (no pickle: safe to "
                        "share); default: the output name's extension (.pdparam)")
    add_output_args(p)
    p.add_argument("--overwrite", type=bool_flag, default=False,
                   help="train: start afresh in a --ckpt_dir that already holds training "
                        "checkpoints of this prefix, deleting them (without it such a run is "
                        "refused; continue it with --mode resume instead)")
    return p


def add_output_args(p: argparse.ArgumentParser) -> None:
    """Where the process runs and how denoise writes its grid (ppddpm/io/grid_output.py)."""
    g = p.add_argument_group("device and sample output")
    g.add_argument("--device", choices=DEVICES, default="auto",
                   help="where to run; auto: the GPU when Paddle sees one, else the CPU")
    g.add_argument("--nrow", type=_positive_int, default=None,
                   help="denoise: images per row of the grid; the rows follow from N of "
                        "--num_images (which may then be just N, e.g. --num_images 50 --nrow 10; "
                        "default: C of N-R-C, or a near-square grid for a bare N)")
    g.add_argument("--to_grayscale", type=bool_flag, nargs="?", const=True, default=False,
                   help="denoise: write the PNGs (grid, --save_individual, --sequence) in grey "
                        "(ITU-R 601 luma); the .npz keeps the model's channels")
    g.add_argument("--save_path", default=None,
                   help="denoise: write the grid (with --sequence: the sequence PNG, its GIF "
                        "and x_t PNG beside it) to this file instead of "
                        "{sample_dir}/sample_{postfix}.png")
    g.add_argument("--show", type=bool_flag, nargs="?", const=True, default=False,
                   help="denoise: open the grid in an image viewer when there is a display "
                        "($DISPLAY or $WAYLAND_DISPLAY, macOS, Windows); otherwise say where it is")


def was_given(args: argparse.Namespace, dest: str) -> bool:
    """Whether ``--dest`` was typed on the command line (``args.given``, parse.py); for a
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
                        "--pretrained_path, DDPM Table 2; ppddpm/evaluate/likelihood.py)")
