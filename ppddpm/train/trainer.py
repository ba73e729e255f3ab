"""The training loop: warm-up, gradient clipping, EMA, samples, atomic checkpoints, exact
resume, data parallelism and gradient accumulation.

Exact resume rests on three facts: the data order is a pure function of (seed, epoch)
(``ppddpm.data.loader``); each example's timestep and noise come from (seed, iteration,
example index) (``randomness.py``); and each iteration reseeds Paddle's generator from
(seed, rank, iteration) before the dropout masks are drawn. A run stopped after N
iterations and resumed therefore repeats the uninterrupted run.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from typing import List, Optional

import paddle
from tqdm.auto import tqdm

from ..config import Config, ConfigError
from ..data.toy import is_toy
from ..errors import PPDDPMError, TrainingDiverged
from ..images import make_grid, parse_num_images, save_grid
from ..models.state import load_state_strict
from ..pretrained import save_inference_file
from ..sampling import build_sampler, generate, image_shape
from ..timestep_sampler import build_timestep_sampler
from . import dist
from .checkpoint import (atomic_save, get_rng_state, inference_path, latest_checkpoint,
                         prune_checkpoints, train_ckpt_path)
from .ema import EMA
from .logger import RunLogger
from .lr import build_lr_scheduler
from .optim import MixedPrecision, build_optimizer, optimizer_state_by_name
from .randomness import (drop_labels, example_draws, iteration_seed, label_dropout_uniform,
                         uniform_timesteps)


class Trainer:
    def __init__(self, cfg: Config, model: paddle.nn.Layer, diffusion, dataset,
                 options: Optional[dict] = None, progress: bool = True):
        self.cfg, self.model, self.diffusion, self.dataset = cfg, model, diffusion, dataset
        self.options = dict(options or {})
        self.progress = progress
        self.world_size, self.rank = dist.world()
        self.is_main = self.rank == 0
        tc = cfg.train
        if tc.batchsize % (self.world_size * tc.accum_steps):
            raise ConfigError(f"--batchsize {tc.batchsize} (the global batch) must split evenly "
                              f"over {self.world_size} rank(s) x {tc.accum_steps} accumulation "
                              "step(s)")
        self.micro_batch = tc.batchsize // (self.world_size * tc.accum_steps)
        # DataParallel averages gradients over ranks; the EMA and files use the bare model.
        self.net = paddle.DataParallel(model) if self.world_size > 1 else model
        self.lr_sched = build_lr_scheduler(tc.lr, tc.warmup_steps, tc.training_iters, tc.lr_decay)
        self.optim = build_optimizer(model, self.lr_sched, tc.grad_clip)
        self.amp = MixedPrecision(tc.amp)
        self.ema = EMA(model, tc.ema_decay)
        self.timestep_sampler = None if tc.timestep_sampler == "uniform" else \
            build_timestep_sampler(tc.timestep_sampler, diffusion.num_timesteps)  # None: uniform
        self.conditional = cfg.model.num_classes is not None   # trains on the batches' labels
        self.sample_labels = self.grid_labels()   # checked now, not at the first sample grid
        self.iteration = 0  # iterations done
        self.last_saved: Optional[str] = None
        self.losses = []  # global-batch loss of every iteration of this process

    # -- state ---------------------------------------------------------------
    def state_dict(self) -> dict:
        from .. import __version__
        state = {"model": self.model.state_dict(), "model_ema": self.ema.state_dict(),
                 "optim": optimizer_state_by_name(self.model, self.optim.state_dict(), True),
                 "lr_sched": self.lr_sched.state_dict(), "amp_scaler": self.amp.state_dict(),
                 "ckpt_idx": self.iteration - 1, "betas": self.diffusion.betas,
                 "options": self.options, "config": self.cfg.to_dict(),
                 "version": __version__, "rng": get_rng_state()}
        if self.timestep_sampler is not None:  # the loss history, for exact resume
            state["timestep_sampler"] = self.timestep_sampler.state_dict()
        return state

    def load_state(self, ckpt: dict, source: str) -> None:
        """Restore a training checkpoint (its architecture was already checked by the caller)."""
        load_state_strict(self.model, ckpt["model"], source)
        load_state_strict(self.ema.model, ckpt.get("model_ema", ckpt["model"]), source)
        if "optim" in ckpt:
            self.optim.set_state_dict(optimizer_state_by_name(self.model, ckpt["optim"], False))
        if "lr_sched" in ckpt:
            self.lr_sched.set_state_dict(ckpt["lr_sched"])
        self.amp.set_state_dict(ckpt.get("amp_scaler") or {})
        if self.timestep_sampler is not None:
            self.timestep_sampler.set_state_dict(ckpt.get("timestep_sampler") or {})
        self.iteration = int(ckpt["ckpt_idx"]) + 1
        self.last_saved = source

    def save_checkpoint(self) -> Optional[str]:
        if not self.is_main:
            return None
        tc = self.cfg.train
        path = atomic_save(self.state_dict(), train_ckpt_path(tc.ckpt_dir, tc.ckpt_prefix, self.iteration))
        prune_checkpoints(tc.ckpt_dir, tc.ckpt_prefix, tc.keep_last)
        self.last_saved = path
        return path

    def save_inference_files(self) -> list:
        """The EMA inference file and its non-EMA twin, as the original writes at the end."""
        if not self.is_main:
            return []
        tc, out = self.cfg.train, []
        for ema, state in ((True, self.ema.state_dict()), (False, self.model.state_dict())):
            path = inference_path(tc.ckpt_dir, tc.ckpt_prefix, self.iteration, ema=ema)
            out.append(save_inference_file(path, state, self.diffusion.betas, self.options, self.cfg))
        return out

    # -- one iteration ---------------------------------------------------------
    def example_indices(self, accum_index: int, n: int) -> range:
        """Positions in the global batch of this rank's micro-batch ``accum_index``."""
        B, W = self.micro_batch, self.world_size
        first = accum_index * B * W + self.rank * B
        return range(first, first + n)

    def draw(self, accum_index: int, n: int, shape):
        """Timesteps, importance weights (or None) and noise of this rank's micro-batch."""
        indices = self.example_indices(accum_index, n)
        u, noise = example_draws(self.cfg.train.seed, self.iteration, indices, shape)
        if self.timestep_sampler is None:
            t, weights = uniform_timesteps(u, self.diffusion.num_timesteps)
        else:
            t, weights = self.timestep_sampler.sample(u)
        return t, weights, paddle.to_tensor(noise)

    def model_labels(self, accum_index: int, labels) -> dict:
        """The model's keyword arguments: {"y": labels, each replaced by the "no label" id
        with probability train.p_uncond}, or {} for an unconditional model."""
        if labels is None:
            return {}
        labels = labels.numpy() if isinstance(labels, paddle.Tensor) else labels
        u = label_dropout_uniform(self.cfg.train.seed, self.iteration,
                                  self.example_indices(accum_index, len(labels)))
        y = drop_labels(labels, u, self.cfg.train.p_uncond, self.cfg.model.num_classes)
        return {"y": paddle.to_tensor(y)}

    def train_step(self, micro_batches: List[paddle.Tensor], labels=None) -> float:
        """One optimizer update from ``accum_steps`` micro-batches (and, for a conditional
        model, their labels); returns the global loss."""
        paddle.seed(iteration_seed(self.cfg.train.seed, self.rank, self.iteration))
        total, count = 0.0, len(micro_batches)
        for a, x0 in enumerate(micro_batches):
            t, weights, noise = self.draw(a, x0.shape[0], x0.shape[1:])
            kwargs = self.model_labels(a, None if labels is None else labels[a])
            last = a == count - 1
            # Gradients are all-reduced once, on the last micro-batch.
            sync = contextlib.nullcontext() if last or self.world_size == 1 else self.net.no_sync()
            with sync:
                with self.amp.autocast():
                    terms = self.diffusion.training_losses(self.net, x0, t, noise=noise,
                                                           model_kwargs=kwargs)
                per_example = terms["loss"] if weights is None else terms["loss"] * weights
                loss = per_example.mean() / count
                self.amp.backward(loss)
            total += float(loss)
            if self.timestep_sampler is not None:
                self.timestep_sampler.update(t, terms)
        value = dist.mean_over_ranks(total)
        if not math.isfinite(value):
            self.optim.clear_grad(set_to_zero=False)
            where = f"the last good checkpoint is {self.last_saved}" if self.last_saved \
                else "no checkpoint was written yet"
            raise TrainingDiverged(
                f"the loss became {value} at iteration {self.iteration}; training stopped "
                f"before the bad update, and {where}. Lower --lr, keep gradient clipping on "
                "(train.grad_clip), or check the data for NaNs.")
        if self.timestep_sampler is not None:
            self.timestep_sampler.flush()  # this iteration's losses, from every rank
        self.amp.step(self.optim)
        # Free the gradients (as torch's zero_grad does): they are rebuilt by the next
        # backward, and holding 143 MB of zeros through the forward raised the peak.
        self.optim.clear_grad(set_to_zero=False)
        self.lr_sched.step()
        self.ema.update()
        self.iteration += 1
        return value

    # -- the loop ----------------------------------------------------------------
    def grid_labels(self):
        """Labels of the sample grids of a conditional model (sample.class_label), or None."""
        if not self.conditional or not self.cfg.sample.class_label:
            return None
        from ..labels import grid_labels, sampling_classes
        return grid_labels(sampling_classes(self.cfg.sample, self.cfg),
                           *parse_num_images(self.cfg.sample.num_images))

    def write_samples(self) -> Optional[str]:
        if not self.is_main:
            return None
        if is_toy(self.cfg.data.dataset):  # 2-D points: scatter, GIF and quality JSON
            from ..toy_output import write_training_samples
            return write_training_samples(self)
        n, rows, cols = parse_num_images(self.cfg.sample.num_images)
        sampler = build_sampler(self.diffusion, self.cfg.sample)
        batch = self.cfg.sample.batchsize or self.cfg.train.batchsize
        from ..engine import snapshot_engine   # the predictor: about twice the dygraph speed
        with snapshot_engine(self.ema.model, image_shape(self.cfg.model)) as net:
            images = generate(net, sampler, n, image_shape(self.cfg.model), batch,
                              seed=self.cfg.sample.seed, progress=self.progress, labels=self.sample_labels,
                              guidance_scale=self.cfg.sample.guidance_scale
                              if self.sample_labels is not None else 0.0)
        path = os.path.join(self.cfg.sample.sample_dir, f"sample_iter{self.iteration}.png")
        save_grid(images, path, rows, cols)
        self.logger.image("samples", make_grid(images, rows, cols), self.iteration)
        return path

    def fit(self, loader) -> int:
        """Train until ``train.training_iters``; returns the iterations done."""
        tc = self.cfg.train
        self.logger = RunLogger(tc.log_dir, enabled=self.is_main)
        self.model.train()
        bar = tqdm(total=tc.training_iters, initial=self.iteration, desc="train", unit="it",
                   disable=not (self.progress and self.is_main), dynamic_ncols=True)
        batches = iter(loader)
        accum = self.cfg.train.accum_steps
        start = time.perf_counter()
        first = self.iteration
        try:
            while self.iteration < tc.training_iters:
                batch = [next(batches) for _ in range(accum)]
                loss = self.train_step([b[0] for b in batch],
                                       [b[1] for b in batch] if self.conditional else None)
                self.losses.append(loss)
                self.logger.scalar("loss", loss, self.iteration)
                self.logger.scalar("lr", self.optim.get_lr(), self.iteration)
                rate = (self.iteration - first) / max(time.perf_counter() - start, 1e-9)
                bar.set_postfix(loss=f"{loss:.4f}", lr=f"{self.optim.get_lr():.2e}",
                                img_s=f"{rate * tc.batchsize:.1f}", refresh=False)
                bar.update(1)
                if tc.sample_interval > 0 and self.iteration % tc.sample_interval == 0:
                    self.write_samples()
                    dist.barrier()
                if tc.ckpt_interval > 0 and self.iteration % tc.ckpt_interval == 0:
                    self.save_checkpoint()
                    self.logger.flush()
                    dist.barrier()
        except KeyboardInterrupt:
            bar.close()
            if self.is_main and self.iteration > first:
                path = self.save_checkpoint()
                raise PPDDPMError(f"interrupted at iteration {self.iteration}; saved {path}. "
                                  "Continue with --mode resume.") from None
            raise
        finally:
            bar.close()
            self.logger.close()
        if self.last_saved != train_ckpt_path(tc.ckpt_dir, tc.ckpt_prefix, self.iteration):
            self.save_checkpoint()
        self.save_inference_files()
        dist.barrier()
        return self.iteration


def find_resume_checkpoint(cfg: Config, path: Optional[str]) -> Optional[str]:
    """``path`` if given, else the latest checkpoint of ``train.ckpt_prefix`` in ``train.ckpt_dir``."""
    return path or latest_checkpoint(cfg.train.ckpt_dir, cfg.train.ckpt_prefix)
