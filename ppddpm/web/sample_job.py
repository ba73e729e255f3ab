"""The "sample" job: the page's form made into sample settings, checked as the command line
checks them (config checks, the sampler factory, the class labels), then sampled with the
sampler's progressive generator so that the predicted x0 and x_t stream to the page."""
from __future__ import annotations

import io
import os
from typing import Dict, NamedTuple, Optional

import numpy as np
from PIL import Image

from ..config import Config, ConfigError, set_value, validate
from ..config.checks import square_layout
from ..config.names import SAMPLERS
from ..data.labels import balanced_labels, sampling_classes
from ..diffusion import GaussianDiffusion
from ..io.images import make_grid, save_grid, save_npz, save_sequence, to_uint8
from ..samplers import checked_sampler, sampler_description
from .catalog import ModelEntry
from .jobs import Job
from .warm import LoadedModel

MAX_IMAGES = 16        # one batch: the page is for watching, --mode denoise for many images
MAX_STEPS = 4000
FRAMES = 25            # about this many frames stream to the page per job
# download name -> file written in the job's folder
DOWNLOADS = {"grid": "grid.png", "gif": "denoising.gif", "npz": "samples.npz"}


class SamplePlan(NamedTuple):
    entry: ModelEntry
    sample: object                # the SampleConfig the sampler is built from
    num_images: int
    rows: int
    cols: int
    labels: Optional[np.ndarray]  # class of each image, or None
    description: str


def number(form: dict, key: str, kind, default, low, high, what: str):
    value = form.get(key, default)
    if value in (None, ""):
        value = default
    try:
        value = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} {value!r} is not {'an integer' if kind is int else 'a number'}"
                          ) from None
    if not low <= value <= high:
        raise ConfigError(f"{what} must be between {low} and {high}, got {value}")
    return value


def sample_settings(form: dict, entry: ModelEntry) -> Config:
    """A copy of the file's config with the form's sample settings; ConfigError for a bad one."""
    cfg = Config.from_dict(entry.config.to_dict(), strict=False)
    sampler = form.get("sampler", "ddim")
    if sampler not in SAMPLERS:
        raise ConfigError(f"sampler {sampler!r} is not known; choose one of {list(SAMPLERS)}")
    steps = number(form, "steps", int, min(50, entry.timesteps), 1, MAX_STEPS, "steps")
    set_value(cfg, "sample.sampler", sampler)
    # the page's settings only: none of the file's own sampling choices carry over
    for key in ("respacing", "spacing", "order", "classifier_path", "classifier_scale"):
        set_value(cfg, f"sample.{key}", None)
    if sampler == "ddpm":   # DDPM on a respaced chain of `steps` steps (all of them: none)
        set_value(cfg, "sample.respacing", None if steps >= entry.timesteps else str(steps))
    else:
        set_value(cfg, "sample.num_steps", steps)
    set_value(cfg, "sample.eta", number(form, "eta", float, 0.0, 0.0, 1.0, "eta"))
    set_value(cfg, "sample.seed", number(form, "seed", int, 0, 0, 2**31 - 1, "seed"))
    label = str(form.get("class_label") or "").strip()
    set_value(cfg, "sample.class_label", label or None)
    set_value(cfg, "sample.guidance_scale",
              number(form, "guidance_scale", float, 0.0, 0.0, 100.0, "guidance scale"))
    validate(cfg)
    return cfg


def plan_sample(form: dict, entry: ModelEntry) -> SamplePlan:
    """Every check before the job is queued, so a bad value is answered at once."""
    cfg = sample_settings(form, entry)
    n = number(form, "num_images", int, 4, 1, MAX_IMAGES, "number of images")
    rows, cols = square_layout(n)
    diffusion = GaussianDiffusion.from_config(cfg.diffusion, betas=entry.betas)
    sampler = checked_sampler(diffusion, cfg.sample)   # the steps fit the chain
    classes = sampling_classes(cfg.sample, cfg, entry.name)
    labels = None if classes is None else balanced_labels(classes, n)
    return SamplePlan(entry, cfg.sample, n, rows, cols, labels, sampler_description(sampler))


def png_bytes(images: np.ndarray, rows: int, cols: int) -> bytes:
    """A grid of uint8 NHWC images as PNG bytes (the page's frames)."""
    grid = make_grid(images, rows, cols)
    buf = io.BytesIO()
    Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(buf, format="PNG")
    return buf.getvalue()


def run_sample(job: Job, loaded: LoadedModel) -> None:
    """Sample the plan step by step; a stop request ends it at the next step and writes
    nothing. Writes the grid PNG, the GIF of x_t and the .npz into the job's folder."""
    plan: SamplePlan = job.plan
    sampler = checked_sampler(loaded.diffusion, plan.sample)
    n = plan.num_images
    job.note((loaded.warning + "; " if loaded.warning else "") + f"sampling {n} images with "
             f"{plan.description}")
    frames = sampler.progressive(loaded.model, [n] + list(loaded.shape), every=1,
                                 seed=plan.sample.seed, y=plan.labels,
                                 guidance_scale=plan.sample.guidance_scale)
    stream_and_write(job, plan, frames, sampler.num_steps)


def stream_and_write(job: Job, plan: SamplePlan, frames, total: int) -> None:
    """Drive a progressive generator of ``total`` steps: the job's progress at every step,
    about FRAMES x0/x_t frames to the page, and the outputs once it ends; nothing is written
    when a stop request ends it."""
    every, xt_frames, last = max(1, total // FRAMES), [], None
    try:
        for i, last in enumerate(frames, 1):
            job.step(i, total)
            if job.stopped:
                return
            if i % every == 0 or i == total:
                x0, xt = to_uint8(last["pred_x0"]), to_uint8(last["x"])
                xt_frames.append(xt)
                job.show_frames({"x0": png_bytes(x0, plan.rows, plan.cols),
                                 "xt": png_bytes(xt, plan.rows, plan.cols)})
    finally:
        frames.close()
    write_outputs(job, to_uint8(last["x"]), xt_frames)


def write_outputs(job: Job, images: np.ndarray, xt_frames) -> None:
    plan: SamplePlan = job.plan
    os.makedirs(job.folder, exist_ok=True)
    paths: Dict[str, str] = {k: os.path.join(job.folder, v) for k, v in DOWNLOADS.items()}
    save_grid(images, paths["grid"], plan.rows, plan.cols)
    save_sequence(xt_frames, os.path.join(job.folder, "xt_sequence.png"), gif_path=paths["gif"],
                  gif_layout=(plan.rows, plan.cols))
    save_npz(images, paths["npz"])
    job.files.update(paths)
    job.note(f"{n_images(plan)} from {plan.entry.name}, {plan.description}; written to "
             f"{job.id}/ in the output folder")


def n_images(plan: SamplePlan) -> str:
    return f"{plan.num_images} image{'s' if plan.num_images != 1 else ''}"
