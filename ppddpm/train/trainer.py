"""The training loop: warm-up, gradient clipping, EMA, samples, atomic checkpoints, exact
resume, data parallelism and gradient accumulation.

Exact resume rests on three facts: the data order is a pure function of (seed, epoch)
(``ppddpm.data.loader``); each example's timestep and noise come from (seed, iteration,
example index) (``randomness.py``); and each iteration reseeds Paddle's generator from
(seed, rank, iteration) before the dropout masks are drawn. A run stopped after N
iterations and resumed therefore repeats the uninterrupted run.

Stopping: SIGINT, SIGTERM and SIGHUP only set a flag (``signals.py``); the loop ends
after the current iteration, saves it and raises ``Interrupted`` (exit 128 + signal).
Under several ranks the flags are summed before every iteration, so all ranks stop
after the same one. Weights holding NaN or inf are never written: they are
checked after every update (``finite.py``) and before every save.
"""
from __future__ import annotations

import contextlib
import math
import signal
import time
from typing import List, Optional

import paddle
from tqdm.auto import tqdm

from ..config import Config, ConfigError
from ..convert.pretrained import save_inference_file
from ..errors import CheckpointError, TrainingDiverged
from ..io.files import WriteFailed, write_failed
from ..io.weights import atomic_save
from ..models.norm import use_batch_norm_kernels
from ..models.state import load_state_strict
from ..runtime import dist
from ..runtime.heap import keep_freed_memory
from ..runtime.progress import note
from ..version import __version__
from .checkpoint import get_rng_state, inference_path, prune_checkpoints, train_ckpt_path
from .ema import EMA, flat_parameters
from .finite import all_finite, first_non_finite
from .logger import RunLogger, new_run_id
from .lr import build_lr_scheduler
from .optim import MixedPrecision, build_optimizer, optimizer_state_by_name
from .randomness import (drop_labels, example_draws, iteration_seed, label_dropout_uniform,
                         uniform_timesteps)
from .report import ProgressLines, warmup_note
from .sample_grids import grid_labels_of, write_sample_grid
from .signals import Interrupted, StopSignals, signal_name
from .timestep_sampler import build_timestep_sampler


SMALL_MODEL_PARAMETERS = 10_000_000   # up to this many weights: the small-model paths (__init__)


class Trainer:
    def __init__(self, cfg: Config, model: paddle.nn.Layer, diffusion, dataset,
                 options: Optional[dict] = None, progress: bool = True, lines: bool = False):
        """``progress``: draw a bar; ``lines``: without a bar, print a plain progress line
        now and then (report.py), for a log that is a file."""
        self.cfg, self.model, self.diffusion, self.dataset = cfg, model, diffusion, dataset
        self.options = dict(options or {})
        self.progress, self.lines = progress, lines and not progress
        self.plain: Optional[ProgressLines] = None  # set by fit when lines are wanted
        self.run_id = new_run_id(cfg.train.ckpt_prefix)  # in every log row; kept on resume
        # Small models: per-iteration work over one flat copy of the weights, and freed
        # activations kept for the next step (both cost memory that a large model's step
        # does not win back in time).
        self.small = sum(int(p.size) for p in model.parameters()) <= SMALL_MODEL_PARAMETERS
        if self.small:
            keep_freed_memory()   # not with --low_memory
        use_batch_norm_kernels(self.small)   # GroupNorm's training pass (models/norm.py)
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
        self.ema = EMA(model, tc.ema_decay, flat=self.small)
        self.timestep_sampler = None if tc.timestep_sampler == "uniform" else \
            build_timestep_sampler(tc.timestep_sampler, diffusion.num_timesteps)  # None: uniform
        self.conditional = cfg.model.num_classes is not None   # trains on the batches' labels
        # checked now, not at the first sample grid
        self.sample_labels = grid_labels_of(cfg) if self.conditional else None
        self.iteration = 0  # iterations done
        self.last_saved: Optional[str] = None  # the last checkpoint written or loaded (finite)
        self.stop: Optional[StopSignals] = None  # set by fit
        self.losses = []  # global-batch loss of every iteration of this process

    # -- state ---------------------------------------------------------------
    def state_dict(self) -> dict:
        state = {"model": self.model.state_dict(), "model_ema": self.ema.state_dict(),
                 "optim": optimizer_state_by_name(self.model, self.optim.state_dict(), True),
                 "lr_sched": self.lr_sched.state_dict(), "amp_scaler": self.amp.state_dict(),
                 "ckpt_idx": self.iteration - 1, "betas": self.diffusion.betas,
                 "options": self.options, "config": self.cfg.to_dict(),
                 "version": __version__, "rng": get_rng_state(), "run_id": self.run_id}
        if self.timestep_sampler is not None:  # the loss history, for exact resume
            state["timestep_sampler"] = self.timestep_sampler.state_dict()
        return state

    def load_state(self, ckpt: dict, source: str) -> None:
        """Restore a training checkpoint (its architecture was already checked by the caller)."""
        for entry in ("model", "model_ema"):
            bad = first_non_finite(ckpt.get(entry) or {})
            if bad is not None:
                raise CheckpointError(f"{source} holds NaN or infinite weights ({entry}.{bad}); "
                                      "resume from an earlier checkpoint (--resume_ckpt_path)")
        bad = first_non_finite(ckpt.get("optim") or {})
        if bad is not None:   # Adam's moments: an inf second moment freezes its weight for good
            raise CheckpointError(f"{source} holds a NaN or infinite optimizer state (optim.{bad}); "
                                  "resume from an earlier checkpoint (--resume_ckpt_path)")
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
        self.run_id = str(ckpt.get("run_id") or self.run_id)  # older checkpoints have none

    def check_weights_finite(self) -> None:
        """Refuse to write weights, EMA weights or optimizer state that hold NaN or inf (an
        infinite Adam second moment leaves finite weights but stops its weight for good: the
        update divides by it)."""
        for name, state in (("model", self.model.state_dict()), ("model_ema", self.ema.state_dict()),
                            ("optim", self.optim.state_dict())):
            bad = first_non_finite(state)
            if bad is not None:
                raise TrainingDiverged(self.diverged_message(
                    f"{name}.{bad} holds NaN or inf at iteration {self.iteration}; nothing was written"))

    def save_checkpoint(self) -> Optional[str]:
        if not self.is_main:
            return None
        tc = self.cfg.train
        self.check_weights_finite()
        path = atomic_save(self.state_dict(), train_ckpt_path(tc.ckpt_dir, tc.ckpt_prefix, self.iteration))
        prune_checkpoints(tc.ckpt_dir, tc.ckpt_prefix, tc.keep_last)
        self.last_saved = path
        return path

    def save_inference_files(self) -> list:
        """The EMA inference file and its non-EMA twin, as the original writes at the end."""
        if not self.is_main:
            return []
        tc, out = self.cfg.train, []
        self.check_weights_finite()
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
            raise TrainingDiverged(self.diverged_message(
                f"the loss became {value} at iteration {self.iteration}; training stopped "
                "before the bad update"))
        if self.timestep_sampler is not None:
            self.timestep_sampler.flush()  # this iteration's losses, from every rank
        self.amp.step(self.optim)
        # Free the gradients (as torch's zero_grad does): they are rebuilt by the next
        # backward, and holding 143 MB of zeros through the forward raised the peak.
        self.optim.clear_grad(set_to_zero=False)
        # Small models: all weights as one flat copy, checked by one reduction, which the EMA
        # update reads next. The same on every rank: no all-reduce.
        weights = flat_parameters(self.model) if self.small else None
        if not all_finite([weights] if self.small else self.model.parameters()):
            raise TrainingDiverged(self.diverged_message(
                f"the update of iteration {self.iteration} made weights NaN or infinite "
                f"(its loss was a finite {value:.4g}); training stopped and did not save it"))
        self.lr_sched.step()
        self.ema.update(weights)
        self.iteration += 1
        return value

    def diverged_message(self, what: str) -> str:
        return (f"{what}, and {self.last_good_checkpoint()}. Lower --lr, keep gradient "
                "clipping on (train.grad_clip), or check the data for NaNs.")

    # -- the loop ----------------------------------------------------------------
    def write_samples(self) -> Optional[str]:
        """The sample grid of this iteration (rank 0), drawn from the EMA network."""
        return write_sample_grid(self) if self.is_main else None

    def write_samples_unless_stopped(self) -> None:
        """Rank 0 writes the sample grid unless a stop signal came; a signal during the
        sampling drops the grid (the iteration itself is done and will be saved)."""
        if not self.is_main or (self.stop is not None and self.stop.signum is not None):
            return
        if self.stop is None or not self.stop.installed:
            self.write_samples()
            return
        try:
            with self.stop.interruptible():
                self.write_samples()
        except BaseException:  # SignalExit, or what it became inside Paddle's C++
            if self.stop.signum is None:
                raise

    def next_batches(self, batches, accum: int) -> Optional[list]:
        """This rank's micro-batches of the next iteration, each [images, labels]; None when
        the loader failed because a stop signal sent to the whole process group also ended
        its workers."""
        try:
            micro_batches = [next(batches) for _ in range(accum)]
        except Exception:
            if self.stop is None or self.stop.signum is None:
                raise
            return None
        if self.stop is not None:
            self.stop.defer_child_errors()
        return micro_batches

    def stop_and_save(self, first: int, signum: int) -> Interrupted:
        """Save the last finished iteration (rank 0) and describe it in an Interrupted."""
        tc = self.cfg.train
        path = train_ckpt_path(tc.ckpt_dir, tc.ckpt_prefix, self.iteration)
        if self.iteration > first and self.last_saved != path:
            self.save_checkpoint()
        name = signal_name(signum)
        if self.iteration > first or (self.last_saved == path and self.iteration > 0):
            done = "saved" if self.iteration > first else "nothing new to save; the last checkpoint is"
            text = (f"interrupted at iteration {self.iteration} by {name}: {done} {path}; "
                    "continue with --mode resume")
        else:
            text = f"interrupted by {name} before the first iteration finished; nothing was saved"
        if not self.is_main:
            text = f"rank {self.rank}: {text} (rank 0 writes the files)"
        return Interrupted(text, signum)

    def fit(self, loader) -> int:
        """Train until ``train.training_iters``; returns the iterations done. A stop signal
        ends training after the current iteration: it is saved and Interrupted is raised."""
        tc = self.cfg.train
        self.logger = RunLogger(tc.log_dir, self.run_id, enabled=self.is_main)
        self.model.train()
        short_warmup = warmup_note(tc.lr, tc.warmup_steps, tc.training_iters, self.iteration)
        if short_warmup:
            note(short_warmup)
        self.plain = ProgressLines(tc.training_iters, self.iteration) \
            if self.lines and self.is_main else None
        bar = tqdm(total=tc.training_iters, initial=self.iteration, desc="train", unit="it",
                   disable=not (self.progress and self.is_main), dynamic_ncols=True)
        first = self.iteration
        self.stop = StopSignals(announce="training stops after the current iteration and "
                                "saves it (press Ctrl-C again to quit at once)" if self.is_main else None)
        try:
            with self.stop, self.write_errors_explained():
                self.run_iterations(iter(loader), bar)
                if self.iteration < tc.training_iters:  # stopped by a signal
                    bar.close()
                    self.stop_on_every_rank(first)
                self.save_final()
        except KeyboardInterrupt:  # raised where no handler of ours was installed
            bar.close()
            if self.is_main and self.iteration > first:
                raise self.stop_and_save(first, signal.SIGINT) from None
            raise
        finally:
            bar.close()
            self.logger.close()
            self.stop = None
        return self.iteration

    def run_iterations(self, batches, bar) -> None:
        """Iterate until training_iters, or until any rank asks to stop."""
        tc, first, start = self.cfg.train, self.iteration, time.perf_counter()
        while self.iteration < tc.training_iters:
            micro_batches = self.next_batches(batches, tc.accum_steps)
            asked = micro_batches is None or self.stop.signum is not None
            if dist.max_over_ranks(asked):   # any rank asked: every rank stops here
                return
            loss = self.train_step([b[0] for b in micro_batches],
                                   [b[1] for b in micro_batches] if self.conditional else None)
            rate = (self.iteration - first) / max(time.perf_counter() - start, 1e-9)
            self.log_iteration(loss, bar, rate * tc.batchsize)
            self.write_periodic_outputs()

    def log_iteration(self, loss: float, bar, images_per_second: float) -> None:
        self.losses.append(loss)
        self.logger.scalar("loss", loss, self.iteration)
        self.logger.scalar("lr", self.optim.get_lr(), self.iteration)
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{self.optim.get_lr():.2e}",
                        img_s=f"{images_per_second:.1f}", refresh=False)
        bar.update(1)
        if self.plain is not None:
            self.plain.update(self.iteration, loss)

    def write_periodic_outputs(self) -> None:
        """The sample grid every train.sample_interval and the checkpoint every ckpt_interval."""
        tc = self.cfg.train
        if tc.sample_interval > 0 and self.iteration % tc.sample_interval == 0:
            self.write_samples_unless_stopped()
            dist.barrier()
        if tc.ckpt_interval > 0 and self.iteration % tc.ckpt_interval == 0:
            self.save_checkpoint()
            self.logger.flush()
            dist.barrier()

    def stop_on_every_rank(self, first: int) -> None:
        """Stopped by a signal (here or on another rank): save the last iteration, raise."""
        signum = dist.max_over_ranks(self.stop.signum or 0) or signal.SIGTERM
        self.stop.signum = self.stop.signum or signum  # stopping, also if asked by another rank
        interrupted = self.stop_and_save(first, signum)
        dist.barrier()  # the other ranks exit once rank 0's file is complete
        raise interrupted

    def save_final(self) -> None:
        """The last iteration's checkpoint (unless just written) and the inference files."""
        tc = self.cfg.train
        if self.last_saved != train_ckpt_path(tc.ckpt_dir, tc.ckpt_prefix, self.iteration):
            self.save_checkpoint()
        self.save_inference_files()
        dist.barrier()

    @contextlib.contextmanager
    def write_errors_explained(self):
        """A failed write (a full disk, a folder gone) as one WriteFailed line that says
        where training stopped and which checkpoint is good."""
        try:
            yield
        except WriteFailed as exc:
            raise WriteFailed(self.write_failed_message(str(exc))) from None
        except OSError as exc:  # e.g. the log file on a full disk
            if exc.errno is None:
                raise
            failed = write_failed(exc.filename or f"the run's files (log: {self.cfg.train.log_dir})", exc)
            raise WriteFailed(self.write_failed_message(str(failed))) from None

    def last_good_checkpoint(self) -> str:
        return (f"the last good checkpoint is {self.last_saved}" if self.last_saved
                else "no checkpoint was written yet")

    def write_failed_message(self, what: str) -> str:
        return (f"{what}; training stopped after iteration {self.iteration} and "
                f"{self.last_good_checkpoint()} (continue with --mode resume once the folder "
                "is writable)")

