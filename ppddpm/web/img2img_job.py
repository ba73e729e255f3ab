"""The "img2img" job (SDEdit, ``ppddpm.edit.img2img``): the uploaded image noised to
t = strength * T and denoised by the chosen sampler's own steps below it, streamed to the page
as the "sample" job streams. Each of the job's images is its own SDEdit of the one upload
(image i draws from the noise stream of (seed, i), as ``--mode img2img`` does)."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..config import ConfigError
from ..config.checks import square_layout
from ..data.labels import balanced_labels, sampling_classes
from ..diffusion import GaussianDiffusion
from ..edit.common import as_tensor, to_model_range, with_steps
from ..edit.img2img import sdedit_start, sdedit_steps
from ..io.images import to_uint8
from ..samplers import checked_sampler, sampler_description
from ..samplers.noise import NoiseStream
from .catalog import ModelEntry
from .jobs import Job
from .sample_job import (MAX_IMAGES, SamplePlan, number, sample_settings, stream_and_write,
                         write_outputs)
from .warm import LoadedModel


class Img2ImgPlan(NamedTuple):
    base: SamplePlan         # what write_outputs and the notes read
    image: np.ndarray        # the upload, CHW in [-1, 1]
    strength: float

    @property
    def entry(self) -> ModelEntry:   # the file the worker loads, as a SamplePlan's
        return self.base.entry


def plan_img2img(form: dict, entry: ModelEntry, image) -> Img2ImgPlan:
    """Every check before the job is queued (the upload itself was checked on arrival)."""
    if image is None:
        raise ConfigError("image to image needs an uploaded start image")
    cfg = sample_settings(form, entry)
    strength = number(form, "strength", float, 0.5, 0.0, 1.0, "strength")
    n = number(form, "num_images", int, 4, 1, MAX_IMAGES, "number of images")
    rows, cols = square_layout(n)
    sampler = checked_sampler(GaussianDiffusion.from_config(cfg.diffusion, betas=entry.betas),
                              cfg.sample)
    classes = sampling_classes(cfg.sample, cfg, entry.name)
    labels = None if classes is None else balanced_labels(classes, n)
    description = f"SDEdit at strength {strength:g}, {sampler_description(sampler)}"
    return Img2ImgPlan(SamplePlan(entry, cfg.sample, n, rows, cols, labels, description),
                       np.asarray(image, dtype=np.float32), strength)


def run_img2img(job: Job, loaded: LoadedModel) -> None:
    """SDEdit step by step (edit/img2img.py); a stop ends it at the next step, writing nothing."""
    plan: Img2ImgPlan = job.plan
    base = plan.base
    sampler = checked_sampler(loaded.diffusion, base.sample)
    steps = sdedit_steps(sampler, plan.strength)
    n, shape = base.num_images, list(loaded.shape)
    x0 = as_tensor(np.repeat(plan.image[None], n, axis=0))
    job.note(f"editing the upload {n} times: {base.description}")
    job.plan = base   # write_outputs reads the sample plan's grid and names
    if not steps:     # strength 0: nothing to denoise, the upload itself
        write_outputs(job, to_uint8(x0), [to_uint8(x0)])
        return
    eps = NoiseStream(base.sample.seed, range(n), shape, max_draws=1).next()
    start = sdedit_start(sampler, to_model_range(x0, loaded.model), eps, plan.strength)
    frames = with_steps(sampler, steps).progressive(
        loaded.model, [n] + shape, every=1, seed=base.sample.seed, noise=start.numpy(),
        y=base.labels, guidance_scale=base.sample.guidance_scale)
    stream_and_write(job, base, frames, len(steps))
