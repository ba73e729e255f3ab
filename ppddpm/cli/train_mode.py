"""``--mode train`` and ``--mode resume``: a few named steps around ``Trainer.fit``."""
from __future__ import annotations

import contextlib
import os
from typing import Tuple

import numpy as np
import paddle

from ..config import Config, ConfigError
from ..convert.pretrained import compare_model_configs, save_inference_file
from ..data import build_dataset, build_loader
from ..data.labels import setup_conditioning
from ..data.spec import check_model_matches_data
from ..data.toy import is_toy
from ..diffusion import SHORT_CHAIN_FIX, GaussianDiffusion, check_schedule, short_chain_problem
from ..errors import CheckpointError, PPDDPMError
from ..io.weights import load_checkpoint
from ..models import build_model
from ..runtime import dist
from ..runtime.progress import bars_wanted, note, say
from ..samplers import checked_sampler
from ..toy.output import final_report, report_finished
from ..train.checkpoint import find_resume_checkpoint, inference_path
from ..train.finite import first_non_finite
from ..train.runlock import claim_run_folder
from ..train.trainer import Trainer
from .args import explicit_settings
from .outputs import output_folders, prepare_output_dirs
from .rerun import refused_continue
from .resolve import resolve_config
from .resume_config import check_resume_overrides


def run_train(args, cfg: Config, resume: bool) -> None:
    if cfg.sample.classifier_path:   # not silently ignored by the training's sample grids
        raise ConfigError("--classifier_path (classifier guidance) is for sampling: use it with "
                          "--mode denoise or --mode eval, not train")
    dist.init_distributed()
    ckpt, ckpt_path = load_resume_checkpoint(args, cfg) if resume else (None, None)
    if ckpt is not None:
        try:
            cfg = config_for_resume(args, ckpt, ckpt_path)  # the run's own config, then the flags
        except ConfigError as exc:
            raise refused_continue(args, exc, cfg.train.ckpt_dir) from None
    prepare_outputs(cfg)
    dataset = build_dataset(cfg.data)
    setup_conditioning(cfg, dataset)   # model.num_classes and data.class_names from the data
    check_model_matches_data(dataset, cfg.model)
    if ckpt is not None:
        compare_model_configs(Config.from_dict(ckpt["config"], strict=False).model, cfg.model, ckpt_path)
        if int(ckpt["ckpt_idx"]) + 1 >= cfg.train.training_iters:
            with claimed_run_folder(args, cfg, resume):
                return complete_finished_run(args, cfg, ckpt, ckpt_path)
    paddle.seed(cfg.train.seed)  # the initial weights
    model = build_model(cfg.model)
    diffusion = GaussianDiffusion.from_config(cfg.diffusion)
    if ckpt is not None and not np.allclose(np.asarray(ckpt["betas"]), diffusion.betas, rtol=1e-12):
        raise CheckpointError(f"{ckpt_path} was trained with other betas than this config "
                              "gives; resume with the config it was trained with")
    with claimed_run_folder(args, cfg, resume):  # one run per checkpoint folder
        trainer = Trainer(cfg, model, diffusion, dataset, options=vars(args),
                          progress=bars_wanted(args.quiet), lines=not args.quiet)
        if ckpt is not None:
            trainer.load_state(ckpt, ckpt_path)
            say(f"resuming {ckpt_path} at iteration {trainer.iteration}", args.quiet)
        warn_if_chain_misses_noise(cfg)   # every check passed: training starts now
        done = trainer.fit(training_loader(cfg, dataset, trainer))
    say(f"trained {done} iterations; last checkpoint {trainer.last_saved}", args.quiet)
    if is_toy(cfg.data.dataset):  # 2-D points: the demo's scatter, GIF and quality figures
        final_report(trainer, lambda message: say(message, args.quiet))


def warn_if_chain_misses_noise(cfg: Config) -> None:
    """A run whose x_T is not noise trains a model that can only sample noise: say so, with
    the fix, just before the first iteration (short chains stay allowed for studies)."""
    problem = short_chain_problem(cfg.diffusion, check_schedule(cfg.diffusion))
    if problem is not None:
        note(f"warning: {problem}; to train a model that samples images, {SHORT_CHAIN_FIX}")


def load_resume_checkpoint(args, cfg: Config) -> Tuple[dict, str]:
    """The training checkpoint to resume (--resume_ckpt_path, else the latest in ckpt_dir)."""
    ckpt_path = find_resume_checkpoint(cfg, args.resume_ckpt_path)
    if ckpt_path is None:
        raise CheckpointError(f"nothing to resume: no {cfg.train.ckpt_prefix}_ckpt_iter_*.pdparam "
                              f"in {cfg.train.ckpt_dir!r}; pass --resume_ckpt_path or use --mode train")
    ckpt = load_checkpoint(ckpt_path)
    if "config" not in ckpt or "ckpt_idx" not in ckpt:
        raise CheckpointError(f"{ckpt_path} is not a ppddpm training checkpoint: "
                              + not_resumable_reason(ckpt))
    return ckpt, ckpt_path


def not_resumable_reason(ckpt: dict) -> str:
    """What the file is instead, and what can be done with it."""
    if "ckpt_idx" not in ckpt and "optim" not in ckpt:
        return ("it is an inference file (weights for sampling, without the optimizer's "
                "state or iteration count), which training cannot resume from; sample it with "
                "--mode denoise --pretrained_path, or give the *_ckpt_iter_*.pdparam the run "
                "wrote to --resume_ckpt_path")
    if "config" not in ckpt:
        return ("it is the original reproduction's training checkpoint, which carries no "
                "config; ppddpm resumes only its own. Sample it with --mode denoise "
                "--pretrained_path, or start a new run with --mode train")
    return "it lacks 'ckpt_idx'; give a *_ckpt_iter_*.pdparam that ppddpm's training wrote"


def config_for_resume(args, ckpt: dict, ckpt_path: str) -> Config:
    """The checkpoint's config in place of the YAML, then this command line's -o and flags;
    a change of the model, the diffusion or the image shape is refused (resume_config.py)."""
    file_cfg = Config.from_dict(ckpt["config"], strict=False)
    cfg = resolve_config(args, "", base=Config.from_dict(ckpt["config"], strict=False))
    check_resume_overrides(file_cfg, cfg, explicit_settings(args), ckpt_path)
    return cfg


def prepare_outputs(cfg: Config) -> None:
    """Before the first iteration: the grids' sampler and every output folder (write-tested)."""
    draws_samples = cfg.train.sample_interval > 0 or is_toy(cfg.data.dataset)
    if draws_samples:
        checked_sampler(GaussianDiffusion.from_config(cfg.diffusion), cfg.sample)
    prepare_output_dirs(output_folders(cfg, "train", draws_samples))


def training_loader(cfg: Config, dataset, trainer: Trainer):
    """Each iteration takes accum_steps batches of micro_batch per rank (see the loader's
    docstring): the same examples as one process with the whole global batch."""
    accum = cfg.train.accum_steps
    return build_loader(dataset, trainer.micro_batch, num_workers=cfg.data.num_workers,
                        seed=cfg.train.seed, start_step=trainer.iteration * accum, infinite=True,
                        in_memory=cfg.data.in_memory)


@contextlib.contextmanager
def claimed_run_folder(args, cfg: Config, resume: bool):
    """Rank 0 locks and tidies the checkpoint folder (train/runlock.py) for the run; every
    rank learns whether that failed, so all of them stop."""
    lock, error = None, None
    if dist.is_main():
        try:
            lock = claim_run_folder(cfg.train.ckpt_dir, cfg.train.ckpt_prefix, resume,
                                    bool(getattr(args, "overwrite", False)), note)
        except PPDDPMError as exc:
            error = exc
    if dist.max_over_ranks(int(error is not None)):
        raise error or PPDDPMError("rank 0 could not claim the checkpoint folder (see its error)")
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def complete_finished_run(args, cfg: Config, ckpt: dict, ckpt_path: str) -> None:
    """Resuming a run that already reached train.training_iters trains nothing and
    rewrites nothing; only inference files missing for its last iteration are written."""
    done, written = int(ckpt["ckpt_idx"]) + 1, []
    file_cfg = Config.from_dict(ckpt["config"], strict=False)
    for ema, entry in ((True, "model_ema"), (False, "model")):
        path = inference_path(cfg.train.ckpt_dir, cfg.train.ckpt_prefix, done, ema=ema)
        if not dist.is_main() or os.path.exists(path) or entry not in ckpt:
            continue
        if first_non_finite(ckpt[entry]) is not None:
            raise CheckpointError(f"{ckpt_path} holds NaN or infinite weights ({entry}); "
                                  "use an earlier checkpoint")
        written.append(save_inference_file(path, ckpt[entry], ckpt["betas"], ckpt.get("options"),
                                           file_cfg))
    say(f"{ckpt_path} already finished: it has {done} iterations and train.training_iters "
        f"is {cfg.train.training_iters}, so there is nothing to train (raise "
        "--training_iters to go on)" + (f"; wrote the missing {', '.join(written)}"
                                        if written else ""), args.quiet)
    if is_toy(cfg.data.dataset) and dist.is_main():
        report_finished(cfg, done, lambda message: say(message, args.quiet))

