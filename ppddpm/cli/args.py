"""The command line shared by every run script: the original reproduction's flags, with
real booleans, each mapped onto a config key (config/flags.py). A flag left out keeps the
YAML value."""
from __future__ import annotations

import argparse
from typing import Optional

from ..config import parse_bool
from ..config.flags import CONFIG_FLAGS
from ..config.names import LOSS_TYPES
from ..engines import ENGINE_KINDS
from ..evaluate.metrics import PUBLISHED_NUM_SAMPLES
from ..evaluate.metrics.inception_weights import ENV_VAR, WEIGHTS_FILE
from ..models.conv import BACKENDS as CONV_BACKENDS
from ..runtime.device import DEVICES
from .edit_args import EDIT_MODES, EDIT_MODES_HELP, add_edit_args

MODES = ("train", "resume", "convert", "denoise", "eval", "fid_stats") + EDIT_MODES


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


USAGE = "%(prog)s [--mode MODE] [--config FILE] [-o SECTION.KEY=VALUE ...] [flags]"
GROUPS = (("run", "what to run"),
          ("data", "data (config section data.*)"),
          ("diffusion", "diffusion process (diffusion.*)"),
          ("train", "training (train.*)"),
          ("sample", "sampling: --mode denoise and the grids written while training (sample.*)"),
          ("convert", "convert (--mode convert)"),
          ("eval", "evaluation (--mode eval | fid_stats)"),
          ("device", "device and speed"))
DIR_FLAGS = ("data_dir", "ckpt_dir", "log_dir", "sample_dir")
METAVARS = {int: "N", float: "X"}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows the other names of a flag (``action.aliases``, flags whose own entry is
    hidden because they mean the same) on the flag's one entry: ``--steps N, --ddim_steps N``."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if action.nargs == "+":   # -o: one metavar, not two lists of them
            return f"{', '.join(action.option_strings)} {action.metavar} ..."
        text = super()._format_action_invocation(action)
        args = self._format_args(action, self._get_default_metavar_for_optional(action)) \
            if action.nargs != 0 else ""
        for alias in getattr(action, "aliases", ()):
            text += f", {alias} {args}".rstrip()
        return text


def metavar(flag: str, typ) -> str:
    if typ in METAVARS:
        return METAVARS[typ]
    return "DIR" if flag in DIR_FLAGS else "N-R-C" if flag == "num_images" else "NAME"


def build_parser(description: str, epilog: Optional[str] = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, usage=USAGE, epilog=epilog,
                                formatter_class=HelpFormatter)
    g = {name: p.add_argument_group(title) for name, title in GROUPS}
    run = g["run"]
    run.add_argument("--config", metavar="FILE", help="YAML config file")
    run.add_argument("-o", "--override", action="extend", nargs="+", default=[],
                     metavar="SECTION.KEY=VALUE",
                     help="set any config key (--help-config lists them): -o model.dropout=0.2 "
                          "train.lr=1e-4 (several after one -o, as in PaddleDetection/PaddleSeg/"
                          "PaddleClas; -o repeats too)")
    run.add_argument("--help-config", action="store_true",
                     help="list every config key that -o accepts, with its default and allowed "
                          "values, and exit")
    run.add_argument("--mode", choices=MODES, metavar="MODE",
                     help="train: train from scratch; resume: continue training (= the "
                          "original's --resume True); convert: write the EMA inference file of a "
                          "training checkpoint; denoise: sample from --pretrained_path; eval: "
                          "FID/IS/precision/recall of --pretrained_path or --samples; fid_stats: "
                          "reference statistics of the training set" + EDIT_MODES_HELP)
    run.add_argument("--resume", type=bool_flag, default=False,
                     help="with --mode train, resume instead (the original's flag)")
    run.add_argument("--resume_ckpt_path", metavar="FILE", default=None,
                     help="training checkpoint to resume or convert (default: the latest in ckpt_dir)")
    run.add_argument("--pretrained_path", metavar="FILE", default=None,
                     help="inference file, training checkpoint or original .pdparam to sample from")
    run.add_argument("--overwrite", type=bool_flag, default=False,
                     help="train: start afresh in a --ckpt_dir that already holds training "
                          "checkpoints of this prefix, deleting them (without it such a run is "
                          "refused; continue it with --mode resume instead)")
    run.add_argument("--quiet", type=bool_flag, nargs="?", const=True, default=False,
                     help="no progress bars or progress lines, no status lines (a bare --quiet "
                          "means true)")
    shown = {}
    for flag, (key, typ, text) in CONFIG_FLAGS.items():   # parse.py adds default and key
        shown[key] = g[key.split(".")[0]].add_argument(
            f"--{flag}", type=bool_flag if typ is bool else typ, default=None, help=text,
            metavar=metavar(flag, typ))
    merge_aliases(p, shown)
    g["diffusion"].add_argument("--loss_type", default=None, metavar="NAME",
                                help="noisepred (the original's name: eps prediction, L_simple) "
                                     "| " + " | ".join(LOSS_TYPES))
    add_sample_output_args(g["sample"])
    add_edit_args(g["sample"])
    add_convert_args(g["convert"])
    add_eval_args(g["eval"])
    add_device_args(g["device"])
    return p


def merge_aliases(p: argparse.ArgumentParser, last_for_key: dict) -> None:
    """Flags that set the same key (--ddim_steps, --steps) show as one entry: the last
    flag's, naming the others, which stay flags of their own for parsing."""
    for action in p._actions:
        key = CONFIG_FLAGS.get(action.dest, (None,))[0]
        shown = last_for_key.get(key)
        if shown is not None and shown is not action:
            shown.aliases = getattr(shown, "aliases", []) + action.option_strings
            action.help = argparse.SUPPRESS


def add_sample_output_args(g) -> None:
    """How denoise writes its images (ppddpm/io/grid_output.py)."""
    g.add_argument("--sequence", type=bool_flag, default=False,
                   help="denoise: draw the progressive generation (predicted x0 over time, one "
                        "row per image) and an animated GIF instead of the final samples")
    g.add_argument("--sequence_every", "--interval", type=int, default=None, metavar="N",
                   help="steps between frames of --sequence (default: about 20 frames)")
    g.add_argument("--save_individual", type=bool_flag, default=False,
                   help="denoise: also write every image as its own PNG under "
                        "{sample_dir}/{postfix}/")
    g.add_argument("--save_npz", type=bool_flag, default=False,
                   help="denoise: also write all images as uint8 NHWC in {sample_dir}/{postfix}.npz "
                        "(the format FID tools read)")
    g.add_argument("--nrow", type=_positive_int, default=None, metavar="N",
                   help="denoise: images per row of the grid; the rows follow from N of "
                        "--num_images (which may then be just N, e.g. --num_images 50 --nrow 10; "
                        "default: C of N-R-C, or a near-square grid for a bare N)")
    g.add_argument("--to_grayscale", type=bool_flag, nargs="?", const=True, default=False,
                   help="denoise: write the PNGs (grid, --save_individual, --sequence) in grey "
                        "(ITU-R 601 luma); the .npz keeps the model's channels")
    g.add_argument("--save_path", metavar="FILE", default=None,
                   help="denoise: write the grid (with --sequence: the sequence PNG, its GIF "
                        "and x_t PNG beside it) to this file instead of "
                        "{sample_dir}/sample_{postfix}.png")
    g.add_argument("--show", type=bool_flag, nargs="?", const=True, default=False,
                   help="denoise: open the grid in an image viewer when there is a display "
                        "($DISPLAY or $WAYLAND_DISPLAY, macOS, Windows); otherwise say where it is")


def add_convert_args(g) -> None:
    g.add_argument("--convert_ema", type=bool_flag, default=True,
                   help="convert: write the EMA weights (False writes the raw weights)")
    g.add_argument("--convert_format", choices=("pdparam", "safetensors"), default=None,
                   help="convert: write the inference file as a paddle.save .pdparam (loadable "
                        "by the original reproduction) or as .safetensors (no pickle: safe to "
                        "share); default: the output name's extension (.pdparam)")


def add_device_args(g) -> None:
    """Where the process runs and how fast."""
    g.add_argument("--device", choices=DEVICES, default="auto",
                   help="where to run; auto: the GPU when Paddle sees one, else the CPU")
    g.add_argument("--engine", choices=ENGINE_KINDS, default="auto",
                   help="denoise: run the network by ONNX Runtime (needs pip install "
                        "\"ppddpm[onnx]\"), the Paddle Inference predictor (both exported once, "
                        "cached in $PPDDPM_ENGINE_CACHE or ~/.cache/ppddpm/engines) or the dynamic "
                        "graph; auto: on the CPU ONNX Runtime when installed, else the predictor, "
                        "if the export works")
    g.add_argument("--conv_backend", choices=CONV_BACKENDS, default=None,
                   help="kernels of the convolutions in the dynamic graph (training, --engine "
                        "dygraph): oneDNN from the Paddle wheel, or Paddle's own; auto: oneDNN "
                        "when it loads (default: $PPDDPM_CONV_BACKEND or auto)")
    g.add_argument("--low_memory", type=bool_flag, default=False,
                   help="return freed tensors to the system at once (glibc malloc with a fixed "
                        "128 KiB mmap threshold, ppddpm/runtime/heap.py): a lower peak memory "
                        "for more time per step (benchmarks/RESULTS.md)")


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


def add_eval_args(g) -> None:
    """--mode eval / fid_stats flags (read by cli.eval_options into evaluate.EvalOptions)."""
    g.add_argument("--inception_weights", default=None, metavar="FILE",
                   help=f"pytorch-fid's FID Inception weights {WEIGHTS_FILE} (read without "
                        f"PyTorch, converted once to a .pdparams cache); default: ${ENV_VAR}")
    g.add_argument("--num_samples", type=int, default=PUBLISHED_NUM_SAMPLES, metavar="N",
                   help="eval: images to generate from --pretrained_path (published numbers "
                        "use 50000)")
    g.add_argument("--fid_stats", default=None, metavar="FILE",
                   help="reference statistics .npz (ppddpm's or pytorch-fid's mu/sigma); "
                        "fid_stats writes it there, eval computes it there if it is missing. "
                        "Default: {data_dir}/fid_stats_{dataset}_{image_size}_train.npz")
    g.add_argument("--samples", default=None, metavar="PATH",
                   help="eval: a folder of images or a uint8 NHWC .npz (arr_0) to evaluate "
                        "instead of generating from a checkpoint")
    g.add_argument("--eval_out", default=None, metavar="FILE",
                   help="eval: JSON file for the results (default: {sample_dir}/eval_*.json)")
    g.add_argument("--inception_batch", type=int, default=50, metavar="N",
                   help="images per Inception forward pass")
    g.add_argument("--metrics", choices=("fid", "bpd"), default="fid",
                   help="eval: fid (FID/IS/precision/recall/KID of samples) or bpd (the "
                        "test-set negative log-likelihood bound in bits/dim of "
                        "--pretrained_path, DDPM Table 2; ppddpm/evaluate/likelihood.py)")
