"""The sample grids written during training (every train.sample_interval), drawn from the EMA
network through a snapshot engine."""
from __future__ import annotations

import os
from typing import Optional

import numpy as np

from ..config import Config, parse_num_images
from ..data.labels import grid_labels, sampling_classes
from ..data.toy import is_toy
from ..engines import snapshot_engine
from ..io.images import make_grid, save_grid
from ..samplers import build_sampler, generate, image_shape
from ..toy.output import write_training_samples


def grid_labels_of(cfg: Config) -> Optional[np.ndarray]:
    """Labels of the sample grids of a conditional model (sample.class_label), or None."""
    if not cfg.sample.class_label:
        return None
    return grid_labels(sampling_classes(cfg.sample, cfg), *parse_num_images(cfg.sample.num_images))


def write_sample_grid(trainer) -> str:
    """``sample_iter{N}.png`` of the trainer's EMA network (the toy sets: scatter, GIF and
    quality JSON); the grid also goes to the run's log."""
    cfg = trainer.cfg
    if is_toy(cfg.data.dataset):
        return write_training_samples(trainer)
    n, rows, cols = parse_num_images(cfg.sample.num_images)
    sampler = build_sampler(trainer.diffusion, cfg.sample)
    batch = cfg.sample.batchsize or cfg.train.batchsize
    labels = trainer.sample_labels
    with snapshot_engine(trainer.ema.model, image_shape(cfg.model)) as net:
        images = generate(net, sampler, n, image_shape(cfg.model), batch, seed=cfg.sample.seed,
                          progress=trainer.progress, labels=labels,
                          guidance_scale=cfg.sample.guidance_scale if labels is not None else 0.0)
    path = os.path.join(cfg.sample.sample_dir, f"sample_iter{trainer.iteration}.png")
    save_grid(images, path, rows, cols)
    trainer.logger.image("samples", make_grid(images, rows, cols), trainer.iteration)
    return path
