"""The text a user reads before a run: ``--help``'s examples and ``--help-config``, every
config key that ``-o SECTION.KEY=VALUE`` accepts with its default, its allowed values and the
flag that also sets it.

The keys and types come from the dataclasses (config/schema.py), the ranges and lists of
names from config/checks.py (``RANGES``, ``CHOICES``), the flags from config/flags.py, and
the defaults from the script's config as a run would resolve it.
"""
from __future__ import annotations

import dataclasses
import os
import textwrap
from typing import Optional

from ..config import Config
from ..config.checks import CHOICES, RANGES
from ..config.flags import CONFIG_FLAGS, EXTRA_FLAG_KEYS
from ..config.names import BETA_SCHEDULES
from ..data import DATASETS
from ..data.toy import is_toy
from ..train.checkpoint import inference_path

# What each key without a flag of its own means (a flag's help says it for the others).
MEANINGS = {
    "data.dataset": "the data set (configs/*.yaml pick it per script)",
    "data.random_flip": "mirror training images left-right at random",
    "data.download": "download a missing data set (CIFAR-10, MNIST, Fashion-MNIST)",
    "data.channels": "image channels; also sets model.in_channels/out_channels unless given",
    "data.class_level": "image folders: the sub-folder depth that names the class",
    "data.class_names": "the labels' names (set by conditional training from the data set)",
    "data.in_memory": "hold a small data set (up to 256 MiB decoded) in memory and batch it there; "
                      "false: decode every epoch in num_workers loader processes",
    "model.arch": "the network (models/)",
    "model.ch": "base channel count (the MLP's hidden width)",
    "model.ch_mult": "channel multiplier per resolution level, e.g. 1,2,2,2",
    "model.num_res_blocks": "residual blocks per level",
    "model.attn_resolutions": "resolutions with self-attention, e.g. 16",
    "model.dropout": "dropout rate in the residual blocks",
    "model.in_channels": "input channels (the data's)",
    "model.out_channels": "output channels (doubled by learn_sigma)",
    "model.resolution": "image size the network is built for (--image_size sets it)",
    "model.learn_sigma": "the network also outputs the variance (Improved DDPM)",
    "model.num_classes": "class-conditional network with this many classes (none: unconditional)",
    "model.num_steps": "rows of the time table of fpn/legacy nets; always set from T",
    "model.norm_groups": "GroupNorm groups; ch must be a multiple of it",
    "model.norm_eps": "GroupNorm epsilon",
    "model.time_freq_shift": "timestep sinusoids 10000^(-i/(ch/2 - shift)); ch // 2 must exceed it",
    "model.downsample_padding": "unet downsampling conv: 0 pads like TF 'SAME' (Ho), 1 on each side (diffusers)",
    "model.num_head_channels": "attention head width; -1: one head over all channels",
    "model.use_scale_shift_norm": "AdaGN: the timestep embedding scales and shifts the second norm",
    "model.mid_attn_norm": "GroupNorm before the middle attention (off in some diffusers models)",
    "model.num_heads": "adm: attention heads (when num_head_channels is -1)",
    "model.num_heads_upsample": "adm: heads of the upsampling path (-1: num_heads)",
    "model.use_new_attention_order": "adm: split q, k, v before the heads (guided-diffusion's new order)",
    "model.resblock_updown": "adm: residual blocks do the down/upsampling (BigGAN style)",
    "model.time_embed_ch": "adm: upstream's num_channels when it is not ch (the 512 model)",
    "model.rescale_timesteps": "adm: the network sees t * 1000 / T (improved-diffusion's default)",
    "model.classifier_pool": "adm_classifier: the head over the last features",
    "diffusion.mean_type": "what the network predicts: the noise, x0 or the posterior mean",
    "diffusion.loss_type": "L_simple (mse), the variational bound (kl) or Improved DDPM's hybrid",
    "train.lr_decay": "learning rate after warm-up: constant, or linear to 0 at the last iteration",
    "train.ckpt_prefix": "name of the training checkpoints ({prefix}_ckpt_iter_N.pdparam)",
    "train.timestep_sampler": "how t is drawn: uniform, or Improved DDPM's loss-aware sampler",
    "sample.batchsize": "sampling batch size (none: train.batchsize)",
    "sample.sequence_every": "steps between frames of --sequence (none: about 20 frames)",
    "sample.strength": "img2img (SDEdit): how far the image is noised, t = strength * T",
    "sample.jump_length": "inpaint (RePaint): grid levels each resampling jump goes back up",
    "sample.jump_n_sample": "inpaint (RePaint): times each stretch is denoised (1: none)",
    "sample.interp_frames": "interpolate: frames from one end to the other, both included",
}
SPECIAL_RANGES = {
    "data.channels": "1 or 3",
    "data.dataset": "one of " + " | ".join(DATASETS),
    "diffusion.beta_schedule": "one of " + " | ".join(s for s in BETA_SCHEDULES if s != "jsd"),
    "sample.num_images": "N-R-C (N = R*C) or N",
    "sample.respacing": "ddimN, N or N1,N2,... (positive)",
    "sample.class_label": "a class name or index, a comma list, or all",
}


def format_value(value) -> str:
    """A default as a user would type it."""
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) if value else "[]"
    if value == "":
        return "''"
    return str(value)


def type_text(annotation) -> str:
    text = str(annotation)
    kind = next((name for word, name in (("List[int]", "integers a,b,..."),
                                         ("List[str]", "names a,b,..."), ("bool", "true|false"),
                                         ("int", "integer"), ("float", "number"))
                 if word in text), "text")
    return kind + (" or none" if "Optional" in text else "")


def allowed_text(key: str) -> str:
    if key in SPECIAL_RANGES:
        return SPECIAL_RANGES[key]
    if key in CHOICES:
        return "one of " + " | ".join(CHOICES[key])
    if key in RANGES:
        return RANGES[key].text()
    return ""


def flags_of(key: str) -> list:
    flags = [f"--{flag}" for flag, (k, _, _) in CONFIG_FLAGS.items() if k == key]
    return flags + [f"--{flag}" for flag, k in EXTRA_FLAG_KEYS.items() if k == key]


def meaning(key: str) -> str:
    if key in MEANINGS:
        return MEANINGS[key]
    flag = next((f for f, (k, _, _) in reversed(CONFIG_FLAGS.items()) if k == key), None)
    return CONFIG_FLAGS[flag][2] if flag else ""


def config_help(cfg: Optional[Config], config_label: str, prog: str) -> str:
    """Every config key: ``key  default  type, allowed values  [flags]`` and what it means."""
    cfg = cfg if cfg is not None else Config()
    lines = [f"Config keys of {prog}, for -o SECTION.KEY=VALUE (several after one -o; flags "
             f"apply after -o). Defaults: {config_label} as this command line resolves it.", ""]
    for section in dataclasses.fields(cfg):
        sub = getattr(cfg, section.name)
        lines.append(f"{section.name}:")
        for field in dataclasses.fields(sub):
            key = f"{section.name}.{field.name}"
            allowed = ", ".join(t for t in (type_text(field.type), allowed_text(key)) if t)
            flags = flags_of(key)
            lines.append(f"  {key} = {format_value(getattr(sub, field.name))}   ({allowed})"
                         + (f"   flag: {' '.join(flags)}" if flags else ""))
            lines += textwrap.wrap(meaning(key), 88, initial_indent=" " * 6,
                                   subsequent_indent=" " * 6, break_on_hyphens=False)
        lines.append("")
    lines.append(f"e.g. python {prog} -o model.ch=64 model.ch_mult=1,2,2 -o train.lr=1e-4")
    return "\n".join(lines)


def examples(prog: str, cfg: Optional[Config], default_mode: str) -> str:
    """3-5 commands for this script, with its real file names, for --help's epilog."""
    cfg = cfg if cfg is not None else Config()
    weights = os.path.normpath(inference_path(cfg.train.ckpt_dir, cfg.train.ckpt_prefix,
                                              cfg.train.training_iters, ema=True))
    run = f"  python {prog}"
    if is_toy(cfg.data.dataset):
        lines = [f"{run}                                  # train; run again: continue or show it",
                 f"{run} -o data.dataset=scurve           # another data set, its own folder",
                 f"{run} --mode denoise --pretrained_path {weights} --sampler ddim --steps 50",
                 f"{run} --config configs/toy_hybrid.yaml  # learned variances: toy_out/gaussian25_hybrid/"]
    elif default_mode == "denoise":
        lines = [f"{run} --pretrained_path {weights}",
                 f"{run} --pretrained_path {weights} --steps 50 --eta 0.5",
                 f"{run} --pretrained_path {weights} --num_images 16-4-4 --sequence True",
                 f"{run} --pretrained_path {weights} --sampler dpm_solver++ --steps 20"]
    else:
        lines = [f"{run} --mode train",
                 f"{run} --mode resume                    # continue from the latest checkpoint",
                 f"{run} --mode denoise --pretrained_path {weights} --num_images 16-4-4",
                 f"{run} --mode denoise --pretrained_path {weights} --sampler dpm_solver++ --steps 20",
                 f"{run} --mode train -o model.ch=64 model.dropout=0.2 --training_iters 1000"]
    more = (f"-o sets any config key, including the model.* ones: python {prog} --help-config "
            "lists them all with their defaults and allowed values. README.md has the whole guide.")
    return "\n".join(["examples:"] + lines + [""] + textwrap.wrap(more, 88, break_on_hyphens=False))
