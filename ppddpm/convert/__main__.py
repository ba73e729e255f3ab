"""python -m ppddpm.convert: turn other weight files into ppddpm inference files."""
from __future__ import annotations

import argparse
import os
import sys

from ..errors import PPDDPMError
from . import FLAG_SOURCES, SOURCES, convert_file, write_inference

DESCRIPTION = """\
Convert weights into a ppddpm inference file: a paddle.save dict holding the
network's weights ("model"), the noise schedule ("betas"), the original flags
("options") and the full ppddpm config ("config"), so that sampling needs no
architecture flags. An --out name ending in .safetensors writes a safetensors
file instead: the weights as tensors, config/betas/options as JSON metadata
(no pickle, so it is safe to share and to load from strangers). Every tensor is checked, name for name and shape for shape,
against the network the config builds; nothing is silently dropped.

sources (--from):
  original   a .pdparam of the original PaddlePaddle reproduction: a training
             checkpoint (cifar10_ckpt_iter_N.pdparam, its EMA weights are used) or an
             inference file (ddpm_cifar10_i800000_ema.pdparam). The network (UNet or
             FPN) and its sizes are read off the parameter names and shapes.
  training   a ppddpm training checkpoint ({prefix}_ckpt_iter_N.pdparam): writes the
             EMA weights, like the original's --mode convert.
  improved-diffusion, guided-diffusion
             a .pt of openai/improved-diffusion or openai/guided-diffusion (models
             and guided-diffusion's classifiers), described by --flags exactly as
             upstream's README writes MODEL_FLAGS and DIFFUSION_FLAGS (classifiers:
             CLASSIFIER_FLAGS); left-out flags take upstream's defaults. Read
             without PyTorch; fp16-trained weights are stored in float32.
  mmgen      an mmgeneration Improved-DDPM checkpoint (ddpm_cosine_hybird_timestep-4k_
             *.pth): its EMA network ("denoising_ema"; --weights raw: "denoising"), the
             sizes read off the weights, T and the schedule off its stored config's text.
  diffusers  a diffusers UNet2DModel folder (config.json and
             diffusion_pytorch_model.safetensors, with its scheduler config), e.g. a
             download of google/ddpm-cifar10-32. Read with safetensors' numpy API, so
             no PyTorch is needed.
  ddim       a checkpoint of DDIM's code (ermongroup/ddim): Ho's CIFAR-10 and LSUN
             models as it downloads them (model-790000.ckpt, ...) or DDIM's own
             ckpt.pth (its CelebA 64 model; EMA weights unless --weights raw). Read
             without PyTorch; sizes from the shapes, the rest from DDIM's configs.
"""

EPILOG = """\
examples:
  python -m ppddpm.convert --from original --src ckpts/ddpm_cifar10_i800000_ema.pdparam \\
      --out ckpts/ddpm_cifar10_ppddpm_ema.pdparam
  python -m ppddpm.convert --from training --src ckpts/cifar10_ckpt_iter_40000.pdparam \\
      --out ckpts/ddpm_cifar10_i40000_ema.pdparam
  python -m ppddpm.convert --from diffusers --src ddpm-cifar10-32/unet --out ddpm_cifar10.pdparam
  python -m ppddpm.convert --from original --src ckpts/ddpm_cifar10_i800000_ema.pdparam \\
      --out ckpts/ddpm_cifar10_ema.safetensors
  python -m ppddpm.convert --from improved-diffusion --src cifar10_uncond_50M_500K.pt \\
      --flags "--image_size 32 --num_channels 128 --num_res_blocks 3 --learn_sigma True \\
      --dropout 0.3 --diffusion_steps 4000 --noise_schedule cosine" --out improved_cifar10.pdparam

Load the result with ppddpm.load_pretrained(path) or pass it as --pretrained_path.
Note: the original's CIFAR-10 UNet was trained on images in [0,1]; its converted
model keeps that (model.data_range) and ppddpm's samplers map its samples to [-1,1].
.pdparam sources are read through ppddpm's allow-list unpickler: a file whose
pickle asks for anything but arrays, Paddle tensors and plain values is refused
before anything in it runs.
Exit status: 0 on success, 2 on bad arguments or a conversion error (one
message, no traceback).
"""


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m ppddpm.convert", description=DESCRIPTION,
                                 epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--from", dest="source", required=True,
                    choices=SOURCES,
                    help="kind of the source (see above)")
    ap.add_argument("--src", required=True, metavar="PATH",
                    help="source file (original, training, ddim) or folder (diffusers)")
    ap.add_argument("--out", required=True, metavar="FILE",
                    help="inference file to write (written atomically; folders are created): "
                         "a paddle.save .pdparam, or a .safetensors file when the name ends "
                         "in .safetensors")
    ap.add_argument("--flags", default="", metavar="'--name value ...'",
                    help="improved-diffusion / guided-diffusion: upstream's MODEL_FLAGS and "
                         "DIFFUSION_FLAGS (classifiers: CLASSIFIER_FLAGS) in one quoted string")
    ap.add_argument("--weights", choices=("ema", "raw"), default="ema",
                    help="original/training/ddim/mmgen checkpoints: write the EMA weights (default) or "
                         "the raw training weights (the non-EMA twin)")
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.source == "diffusers" and not os.path.isdir(args.src):
            raise PPDDPMError(f"--src {args.src!r} must be a diffusers model folder "
                              "(with config.json and diffusion_pytorch_model.safetensors)")
        if args.flags and args.source not in FLAG_SOURCES:
            raise PPDDPMError(f"--flags is read only with --from {' or '.join(FLAG_SOURCES)}")
        try:
            result = convert_file(args.source, args.src, use_ema=args.weights == "ema",
                                  flags=args.flags)
        except OSError as exc:
            raise PPDDPMError(f"cannot read {args.src!r}: {exc}") from None
        try:
            path = write_inference(result, args.out)
        except OSError as exc:
            raise PPDDPMError(f"cannot write {args.out!r}: {exc}") from None
    except PPDDPMError as exc:
        print(f"ppddpm.convert: error: {exc}", file=sys.stderr)
        return 2
    cfg = result["config"]["model"]
    print(f"wrote {path}: {cfg['arch']} (ch={cfg['ch']}, ch_mult={cfg['ch_mult']}), "
          f"{len(result['model'])} tensors, T={len(result['betas'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
