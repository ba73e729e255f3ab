"""``--mode encode | interpolate | img2img | inpaint``: real images edited with a weights file,
over ``pipeline.prepare_sampling`` (the network, engine and sampler denoise uses) and
``ppddpm.edit``. Several images are split into batches that are on disk as soon as they are
done and dealt to the ranks under paddle.distributed (evaluate/resumable.py); rank 0 writes.
Every output is named from the run: ``{sample_dir}/{mode}_{postfix}...``."""
from __future__ import annotations

import hashlib
import math
import os
import shutil
from typing import Callable, List, Optional

import numpy as np

from ..config import Config, ConfigError, label
from ..edit import decode, encode, img2img, interpolation_latents, repaint, seed_latent
from ..evaluate.likelihood import test_images
from ..evaluate.resumable import run_resumable, sampling_meta
from ..io.files import atomic_write
from ..io.images import save_grid, save_individual, save_npz, save_sequence, to_uint8
from ..pipeline import SamplingSetup, run_class_tag, run_labels
from ..runtime import dist
from ..runtime.progress import note, say
from ..samplers import sampler_description
from .args import was_given
from .denoise import sampling_setup
from .edit_inputs import InputImages, parse_endpoints, read_images, read_mask
from .outputs import output_folders, prepare_output_dirs

ODE_MODES = ("encode", "interpolate")   # the DDIM ODE, eta 0
GRID_COLUMNS = 16                       # images shown in a mode's grid PNG (all are in the .npz)


def mode_preset(mode: str) -> List[str]:
    """Config settings a mode chooses before -o and flags: encode and interpolate run the DDIM
    ODE, without clipping x0 (a clipped step leaves the ODE that the encoder inverts: on the
    README's digits model, 50 steps reconstruct to an RMSE of 0.05 unclipped, 0.44 clipped)."""
    return ["sample.sampler=ddim", "sample.clip_denoised=false"] if mode in ODE_MODES else []


def run_edit(args, cfg: Config, mode: str) -> None:
    dist.init_distributed()
    if mode in ODE_MODES:
        check_ode_sampler(cfg, mode)
    prepare_output_dirs(output_folders(cfg, mode))
    setup = sampling_setup(args, cfg)
    if list(setup.shape) == [2, 1, 1]:
        raise ConfigError(f"--mode {mode} edits images; {args.pretrained_path} is a model of "
                          "2-D points (a toy set)")
    if not was_given(args, "sample_postfix"):   # runs of other classes keep their own files
        cfg.sample.sample_postfix += run_class_tag(cfg.sample, setup)
    {"encode": run_encode, "interpolate": run_interpolate, "img2img": run_img2img,
     "inpaint": run_inpaint}[mode](args, cfg, setup)


def check_ode_sampler(cfg: Config, mode: str) -> None:
    s = cfg.sample
    if s.sampler != "ddim":
        raise ConfigError(f"--mode {mode} runs the deterministic DDIM ODE, not --sampler "
                          f"{s.sampler}; drop {label('sample.sampler')} (ddim is the default "
                          "here) and set the steps with --steps or --stride")
    if s.eta != 0:
        raise ConfigError(f"--mode {mode} runs the deterministic DDIM ODE: "
                          f"{label('sample.eta')} must be 0, got {s.eta:g}")


def base_path(cfg: Config, mode: str, tag: str = "") -> str:
    return os.path.join(cfg.sample.sample_dir, f"{mode}_{cfg.sample.sample_postfix}{tag}")


def labels_for(cfg: Config, setup: SamplingSetup, n: int, source: str) -> Optional[np.ndarray]:
    """Image i's class (conditional or classifier-guided models), else None."""
    return run_labels(cfg.sample, setup, n, source)[1]


def guide_for(cfg: Config, setup: SamplingSetup, labels: Optional[np.ndarray]) -> Callable:
    """``guide(a, b)``: the label and guidance keywords of images a..b."""
    def guide(a: int, b: int) -> dict:
        if labels is None:
            return {}
        return dict(y=labels[a:b], guidance_scale=cfg.sample.guidance_scale,
                    classifier=setup.classifier)
    return guide


def run_meta(args, cfg: Config, setup: SamplingSetup, mode: str, images: np.ndarray,
             labels, **extra) -> dict:
    """What makes the batches of a ``.partial`` folder results of this run."""
    meta = sampling_meta(args.pretrained_path, sampler_description(setup.sampler), cfg.sample,
                         setup.shape, classifier=setup.classifier)
    meta.update(mode=mode, inputs=hashlib.sha1(np.ascontiguousarray(images).tobytes()).hexdigest(),
                labels=None if labels is None else [int(c) for c in labels],
                guidance_scale=cfg.sample.guidance_scale, **extra)
    return meta


def batches(args, cfg: Config, setup: SamplingSetup, mode: str, n: int, meta: dict, compute,
            base: str) -> Optional[np.ndarray]:
    """``compute(a, b)`` over the n images, resumable and distributed; rank 0 gets all."""
    folder = base + ".partial"
    if setup.warning:
        note(setup.warning)
    return run_resumable(folder, meta, n, cfg.sample.batchsize or cfg.train.batchsize, compute,
                         mode, progress=not args.quiet)


def finish(args, base: str, written: List[str]) -> None:
    shutil.rmtree(base + ".partial", ignore_errors=True)   # every output is written
    say("wrote " + ", ".join(written), args.quiet)


def pairs_grid(rows: List[np.ndarray], path: str) -> str:
    """A grid PNG with one row per stage (inputs, ..., results) of the first GRID_COLUMNS."""
    k = min(len(rows[0]), GRID_COLUMNS)
    return save_grid(np.concatenate([r[:k] for r in rows]), path, len(rows), k)


def write_results(args, base: str, rows: List[np.ndarray], results: np.ndarray) -> List[str]:
    written = [pairs_grid(rows, base + ".png")]
    if args.save_individual:
        save_individual(results, base)
        written.append(base + "/")
    if args.save_npz:
        written.append(save_npz(results, base + ".npz"))
    return written


# ---------------------------------------------------------------- encode

def encode_inputs(args, cfg: Config, setup: SamplingSetup) -> InputImages:
    """--init_image, else the first N (of --num_images) images of the data set's test split
    (as --metrics bpd reads it: sets without one give their training images)."""
    shape = setup.shape
    if args.init_image:
        return read_images(args.init_image, shape)
    get, count, description = test_images(cfg.data)
    n = min(count, setup.grid[0])
    images = np.asarray(get(0, n), dtype=np.float32)
    if list(images.shape[1:]) != list(shape):
        raise ConfigError(f"the data set's images ({description}) are {list(images.shape[1:])}, "
                          f"but the model makes {list(shape)}; give --init_image")
    say(f"encoding the first {n} images of {description}", args.quiet)
    return InputImages(images, [f"{cfg.data.dataset}_{i:05d}" for i in range(n)])


def run_encode(args, cfg: Config, setup: SamplingSetup) -> None:
    inputs = encode_inputs(args, cfg, setup)
    n, sampler = len(inputs.images), setup.sampler
    labels = labels_for(cfg, setup, n, args.pretrained_path)
    guide = guide_for(cfg, setup, labels)
    say(f"encoding {n} images with {sampler_description(sampler)} and decoding them again",
        args.quiet)

    def compute(a: int, b: int) -> np.ndarray:
        z = encode(setup.model, sampler, inputs.images[a:b], progress=not args.quiet, **guide(a, b))
        back = decode(setup.model, sampler, z, progress=not args.quiet, **guide(a, b))
        return np.stack([z.numpy(), back.numpy()], axis=1).astype(np.float32)

    base = base_path(cfg, "encode")
    out = batches(args, cfg, setup, "encode", n,
                  run_meta(args, cfg, setup, "encode", inputs.images, labels), compute, base)
    if out is None:   # another rank: rank 0 writes
        return
    latents, back = out[:, 0], out[:, 1]
    rmse = np.sqrt(np.mean((back - inputs.images) ** 2, axis=(1, 2, 3)))
    atomic_write(base + ".npz", lambda fh: np.savez(
        fh, latents=latents, names=np.asarray(inputs.names), reconstruction_rmse=rmse,
        steps=np.int64(sampler.num_steps)))
    grid = pairs_grid([to_uint8(inputs.images), to_uint8(back)], base + ".png")
    say(f"reconstruction error (decode of the latents, {sampler.num_steps} steps): RMSE "
        f"{rmse.mean():.4f} in [-1, 1] (PSNR {psnr(rmse.mean()):.1f} dB), worst {rmse.max():.4f}",
        args.quiet)
    finish(args, base, [base + ".npz (latents, names, reconstruction_rmse)",
                        grid + " (inputs above, decoded latents below)"])


def psnr(rmse: float) -> float:
    """PSNR in dB of an RMSE on the [-1, 1] scale (peak-to-peak 2)."""
    return float("inf") if rmse == 0 else 20.0 * math.log10(2.0 / rmse)


# ---------------------------------------------------------------- interpolate

def run_interpolate(args, cfg: Config, setup: SamplingSetup) -> None:
    ends = parse_endpoints(args.endpoints or "0,1")
    frames_n = cfg.sample.interp_frames
    labels = labels_for(cfg, setup, 1, args.pretrained_path)
    guide = {} if labels is None else dict(y=labels, guidance_scale=cfg.sample.guidance_scale,
                                          classifier=setup.classifier)
    if not dist.is_main():   # one short strip: rank 0 draws it alone
        return
    latents = [end_latent(args, setup, end, guide) for end in ends]
    if setup.warning:
        note(setup.warning)
    zs = interpolation_latents(latents[0], latents[1], frames_n)
    batch = cfg.sample.batchsize or cfg.train.batchsize
    say(f"decoding {frames_n} latents between {ends[0]} and {ends[1]} with "
        f"{sampler_description(setup.sampler)}", args.quiet)
    frames = []
    for a in range(0, frames_n, batch):
        z = zs[a:a + batch, 0]
        y = {} if labels is None else dict(guide, y=np.repeat(labels, len(z)))
        frames.append(to_uint8(decode(setup.model, setup.sampler, z,
                                      progress=not args.quiet, **y)))
    frames = np.concatenate(frames)
    base = base_path(cfg, "interpolate")
    save_sequence([f[None] for f in frames], base + ".png", gif_path=base + ".gif",
                  gif_layout=(1, 1))
    say(f"wrote {base}.png (the {frames_n} frames, left to right) and {base}.gif", args.quiet)


def end_latent(args, setup: SamplingSetup, end, guide: dict) -> np.ndarray:
    """[1, C, H, W] x_T of one end: a seed's image 0, or an image file encoded."""
    if isinstance(end, int):
        return seed_latent(end, setup.shape).numpy()
    image = read_images(end, setup.shape, "--endpoints").images[:1]
    return encode(setup.model, setup.sampler, image, progress=not args.quiet, **guide).numpy()


# ---------------------------------------------------------------- img2img and inpaint

def required_images(args, mode: str, shape) -> InputImages:
    if not args.init_image:
        raise ConfigError(f"--mode {mode} needs --init_image: an image file or a folder of "
                          "images of the model's size and channels")
    return read_images(args.init_image, shape)


def run_img2img(args, cfg: Config, setup: SamplingSetup) -> None:
    inputs = required_images(args, "img2img", setup.shape)
    n, strength = len(inputs.images), cfg.sample.strength
    labels = labels_for(cfg, setup, n, args.pretrained_path)
    guide = guide_for(cfg, setup, labels)
    say(f"SDEdit of {n} images at strength {strength:g} with "
        f"{sampler_description(setup.sampler)}", args.quiet)

    def compute(a: int, b: int) -> np.ndarray:
        return to_uint8(img2img(setup.model, setup.sampler, inputs.images[a:b], strength,
                                seed=cfg.sample.seed, index_offset=a,
                                progress=not args.quiet, **guide(a, b)))

    base = base_path(cfg, "img2img", f"_s{strength:g}")
    out = batches(args, cfg, setup, "img2img", n,
                  run_meta(args, cfg, setup, "img2img", inputs.images, labels,
                           strength=strength), compute, base)
    if out is not None:
        finish(args, base, write_results(args, base, [to_uint8(inputs.images), out], out))


def run_inpaint(args, cfg: Config, setup: SamplingSetup) -> None:
    inputs = required_images(args, "inpaint", setup.shape)
    mask = read_mask(args.mask, setup.shape)
    n, s = len(inputs.images), cfg.sample
    labels = labels_for(cfg, setup, n, args.pretrained_path)
    guide = guide_for(cfg, setup, labels)
    say(f"RePaint of {n} images ({int((1 - mask).sum())} pixels to generate) with "
        f"{sampler_description(setup.sampler)}, jump length {s.jump_length}, "
        f"{s.jump_n_sample} samples", args.quiet)

    def compute(a: int, b: int) -> np.ndarray:
        return to_uint8(repaint(setup.model, setup.sampler, inputs.images[a:b], mask,
                                s.jump_length, s.jump_n_sample, seed=s.seed, index_offset=a,
                                progress=not args.quiet, **guide(a, b)))

    base = base_path(cfg, "inpaint")
    out = batches(args, cfg, setup, "inpaint", n,
                  run_meta(args, cfg, setup, "inpaint", inputs.images, labels,
                           mask=hashlib.sha1(mask.tobytes()).hexdigest(),
                           jump_length=s.jump_length, jump_n_sample=s.jump_n_sample),
                  compute, base)
    if out is not None:
        shown = to_uint8(inputs.images * mask)   # the unknown region mid-grey
        finish(args, base, write_results(args, base, [to_uint8(inputs.images), shown, out], out))
