"""Which command-line flag sets which config key: data that the configuration and the
command line both read.

The configuration names a key in its errors as ``--lr / train.lr`` (``label``); the command
line (cli/args.py) builds one flag per row, with the row's type (``bool`` flags take
true/false) and help, and ``--help`` adds the default read from the config.
"""
from __future__ import annotations

from .names import BETA_SCHEDULES, SAMPLERS, SOLVER_DEFAULTS, SOLVERS, SPACINGS

# flag -> (config key or None, type, help). Defaults come from the YAML file.
CONFIG_FLAGS = {
    # data
    "data_dir": ("data.data_dir", str, "data set folder (CIFAR-10: holds cifar-10-python.tar.gz "
                 "or cifar-10-batches-py/; image sets: any tree of JPEG/PNG/WebP)"),
    "num_workers": ("data.num_workers", int, "data loader worker processes (0 loads in the main process)"),
    "image_size": ("data.image_size", int, "image size of the data (image folders: resize and "
                   "crop to it) and of the model: also sets model.resolution"),
    # diffusion
    "beta_schedule": ("diffusion.beta_schedule", str, " | ".join(
        s for s in BETA_SCHEDULES if s != "jsd") + " (jsd is refused: its last beta is 1)"),
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
    "sampler": ("sample.sampler", str, " | ".join(SAMPLERS) + ": DDPM's ancestral sampler, DDIM, "
                "and the fast ODE solvers (README 'Fast samplers')"),
    "stride": ("sample.stride", int, "DDIM: use every stride-th timestep (1000/10 = 100 steps)"),
    "ddim_steps": ("sample.num_steps", int, "DDIM: number of steps (instead of --stride)"),
    "eta": ("sample.eta", float, "DDIM eta: 0 is deterministic, 1 matches DDPM's posterior variance"),
    "skip": ("sample.skip", str, "DDIM timestep spacing: " + " | ".join(SPACINGS) +
             " (DDIM's paper uses the first two; --spacing overrides it)"),
    "respacing": ("sample.respacing", str, "DDPM on a subsequence: 'ddim50', '250' or '10,15,20'"),
    "sample_seed": ("sample.seed", int, "seed of the sampling noise (image i depends only on it and i)"),
    "clip_denoised": ("sample.clip_denoised", bool, "clip the predicted x0 to the data range"),
    # class-conditional models (classifier-free guidance)
    "class_label": ("sample.class_label", str, "conditional models: the class to sample, by "
                    "name or index, a comma list (one block of grid rows each), or 'all' (with "
                    "--num_images 100-10-10: one row per class of 10)"),
    "guidance_scale": ("sample.guidance_scale", float, "classifier-free guidance w: eps = (1+w) "
                       "eps(x, y) - w eps(x, no label); 0 samples the conditional model"),
    "classifier_path": ("sample.classifier_path", str, "classifier guidance (Dhariwal & Nichol): "
                        "a noisy classifier's file (converted guided-diffusion classifier) "
                        "for the diffusion model's resolution; classes from --class_label, "
                        "else random"),
    "classifier_scale": ("sample.classifier_scale", float, "classifier guidance's scale s "
                         "(1 when --classifier_path is given; needs it)"),
    "conditional": ("train.conditional", bool, "train a class-conditional model on the data "
                    "set's labels (sets model.num_classes from it)"),
    "p_uncond": ("train.p_uncond", float, "conditional training: probability that a label is "
                 "replaced by 'no label', which trains the unconditional half of guidance"),
    "steps": ("sample.num_steps", int, "number of sampling steps (= network evaluations) of "
              "ddim, dpm_solver++, dpm_solver and unipc"),
    "order": ("sample.order", int, "order of " + " / ".join(SOLVERS) + ": 1 (= DDIM), 2 or 3 "
              "(default: " + ", ".join(f"{name} {d['order']}" for name, d in
                                       SOLVER_DEFAULTS.items()) + "); unipc's corrector adds one"),
    "clipped_eps": ("sample.clipped_eps", bool, "DDIM and the solvers: re-derive eps from the "
                    "clipped x0 (improved-diffusion's DDIM; true) or keep the model's eps "
                    "(diffusers' DDIM; false); default: true in guided runs only"),
    "dynamic_threshold": ("sample.threshold", float, "Imagen's dynamic thresholding of x0 "
                          "instead of the clip: per sample s = max(1, this quantile of |x0|), "
                          "x0 clipped to [-s, s] and divided by s; e.g. 0.995 (default: off)"),
    "spacing": ("sample.spacing", str, "timestep grid of ddim and the solvers: " +
                " | ".join(SPACINGS) + " (ppddpm/samplers/spacing.py); default: --skip for "
                "ddim, " + " / ".join(sorted({d["spacing"] for d in SOLVER_DEFAULTS.values()}))
                + " for " + " / ".join(SOLVERS) + " (they never evaluate t = 0)"),
    # editing real images (--mode img2img | inpaint | interpolate; README "Editing images")
    "strength": ("sample.strength", float, "img2img (SDEdit): noise the image to t = strength*T "
                 "and denoise it from there; 0 returns the image, 1 is plain sampling"),
    "jump_length": ("sample.jump_length", int, "inpaint (RePaint): levels of the sampler's grid "
                    "that each resampling jump goes back up (the paper: 10 of 250)"),
    "jump_n_sample": ("sample.jump_n_sample", int, "inpaint (RePaint): times each stretch of the "
                      "chain is denoised (the paper: 10; 1 is no resampling)"),
    "frames": ("sample.interp_frames", int, "interpolate: frames from one end to the other, "
               "both included"),
}


# Flags outside CONFIG_FLAGS that still stand for a config key (their own parsing: cli/args.py).
EXTRA_FLAG_KEYS = {"sequence_every": "sample.sequence_every", "loss_type": "diffusion.loss_type"}


def flag_of(key: str):
    """The first flag that sets ``key`` (``--ddim_steps`` before ``--steps``), or None."""
    return next((flag for flag, (k, _, _) in CONFIG_FLAGS.items() if k == key), None)


def flags_of(key: str) -> list:
    """Every flag that sets ``key`` (``--ddim_steps`` and ``--steps`` both set sample.num_steps)."""
    return [flag for flag, (k, _, _) in CONFIG_FLAGS.items() if k == key]


def label(key: str) -> str:
    """'--lr / train.lr' for a key with a command-line flag ('--ddim_steps / --steps /
    sample.num_steps' for one with two), else the key itself."""
    return " / ".join([f"--{flag}" for flag in flags_of(key)] + [key])
