"""``--mode convert``: the EMA (or raw) weights of a training checkpoint as an inference file."""
from __future__ import annotations

import os

from ..config import Config
from ..convert.pretrained import save_inference_file
from ..errors import CheckpointError
from ..io.weights import load_checkpoint
from ..runtime.progress import say
from ..train.checkpoint import inference_path
from ..train.checkpoint import find_resume_checkpoint
from .outputs import output_folders, prepare_output_dirs


def convert_output_path(args, cfg: Config, src: str, iters: int) -> str:
    """--pretrained_path when given (the original's convert command), else the automatic
    name; never the training checkpoint being read, nor any other training checkpoint."""
    out = args.pretrained_path or inference_path(cfg.train.ckpt_dir, cfg.train.ckpt_prefix,
                                                 iters, ema=args.convert_ema)
    same = os.path.exists(out) and os.path.samefile(out, src)
    if same or "_ckpt_iter_" in os.path.basename(out):
        raise CheckpointError(f"convert would write over the training checkpoint {out}"
                              f"{' it reads' if same else ''}; give --pretrained_path another "
                              "file name (e.g. ckpts/ddpm_cifar10_i800000_ema.pdparam)")
    return out


def run_convert(args, cfg: Config) -> None:
    src = find_resume_checkpoint(cfg, args.resume_ckpt_path)
    if src is None:
        raise CheckpointError(f"no training checkpoint to convert in {cfg.train.ckpt_dir!r}; "
                              "pass --resume_ckpt_path")
    prepare_output_dirs(output_folders(cfg, "convert") if not args.pretrained_path else
                        [("--pretrained_path", os.path.dirname(os.path.abspath(args.pretrained_path)))])
    ckpt = load_checkpoint(src)
    entry = "model_ema" if args.convert_ema else "model"
    if entry not in ckpt or "ckpt_idx" not in ckpt:
        raise CheckpointError(f"{src} has no {entry!r} or 'ckpt_idx' entry; is it a training checkpoint?")
    file_cfg = Config.from_dict(ckpt["config"], strict=False) if "config" in ckpt else cfg
    iters = int(ckpt["ckpt_idx"]) + 1
    out = convert_output_path(args, cfg, src, iters)
    if getattr(args, "convert_format", None) == "safetensors" and not args.pretrained_path \
            and not out.endswith(".safetensors"):
        out = os.path.splitext(out)[0] + ".safetensors"   # the extension picks the format
    save_inference_file(out, ckpt[entry], ckpt["betas"], ckpt.get("options"), file_cfg)
    say(f"wrote {out} ({'EMA' if args.convert_ema else 'raw'} weights of iteration {iters})",
        args.quiet)
