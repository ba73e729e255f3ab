"""The shared entry point of every run script: ``--mode train | resume | convert | denoise``."""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Optional, Sequence

import numpy as np

from .cli_args import build_parser, overrides_from_args
from .config import Config, ConfigError, apply_overrides, load_config, set_value, validate
from .errors import CheckpointError, PPDDPMError


def resolve_config(args, default_config: str, preset: Sequence[str] = ()) -> Config:
    """YAML, then the script's preset (e.g. the DDIM sampler), then -o overrides, then flags."""
    cfg = load_config(args.config or default_config)
    apply_overrides(cfg, list(preset) + list(args.override))
    for key, value in overrides_from_args(args):
        set_value(cfg, key, value)
    validate(cfg)
    # "{sampler}_cifar10_test" names DDPM and DDIM samples apart, as the original did.
    cfg.sample.sample_postfix = cfg.sample.sample_postfix.replace("{sampler}", cfg.sample.sampler)
    return cfg


def _set_device(args) -> str:
    """GPU when there is one. On the CPU: the thread count (threads.py) and the dygraph
    conv kernels (--conv_backend, models/conv.py); --low_memory (heap.py)."""
    import paddle
    from .models.conv import conv_backend, set_conv_backend
    from .threads import use_compute_threads
    from .train.dist import local_world_size
    device = "gpu" if paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0 else "cpu"
    paddle.set_device(device)
    set_conv_backend(args.conv_backend or conv_backend())
    if device == "cpu":
        use_compute_threads(local_world_size())
    if args.low_memory:
        from .heap import release_freed_memory
        if not release_freed_memory():
            print("note: --low_memory has no effect here (not glibc, or MALLOC_MMAP_THRESHOLD_ "
                  "is already set)", file=sys.stderr)
    return device


def _say(args, message: str) -> None:
    from .train.dist import is_main
    if not args.quiet and is_main():
        print(message, flush=True)


def _note(message: str) -> None:
    """Notes the user should see even with --quiet (stderr, rank 0)."""
    from .train.dist import is_main
    if is_main():
        print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def _claim_run_folder(args, cfg: Config, resume: bool):
    """Rank 0 locks and tidies the checkpoint folder (train/runlock.py) for the run; every
    rank learns whether that failed, so all of them stop."""
    from .train import dist
    from .train.runlock import claim_run_folder
    lock, error = None, None
    if dist.is_main():
        try:
            lock = claim_run_folder(cfg.train.ckpt_dir, cfg.train.ckpt_prefix, resume,
                                    bool(getattr(args, "overwrite", False)), _note)
        except PPDDPMError as exc:
            error = exc
    if dist.max_over_ranks(int(error is not None)):
        raise error or PPDDPMError("rank 0 could not claim the checkpoint folder (see its error)")
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def _complete_finished_run(args, cfg: Config, ckpt: dict, ckpt_path: str) -> None:
    """Resuming a run that already reached train.training_iters trains nothing and
    rewrites nothing; only inference files missing for its last iteration are written."""
    from .pretrained import save_inference_file
    from .train.checkpoint import inference_path
    from .train.dist import is_main
    from .train.finite import first_non_finite
    done, written = int(ckpt["ckpt_idx"]) + 1, []
    file_cfg = Config.from_dict(ckpt["config"], strict=False)
    for ema, entry in ((True, "model_ema"), (False, "model")):
        path = inference_path(cfg.train.ckpt_dir, cfg.train.ckpt_prefix, done, ema=ema)
        if not is_main() or os.path.exists(path) or entry not in ckpt:
            continue
        if first_non_finite(ckpt[entry]) is not None:
            raise CheckpointError(f"{ckpt_path} holds NaN or infinite weights ({entry}); "
                                  "use an earlier checkpoint")
        written.append(save_inference_file(path, ckpt[entry], ckpt["betas"], ckpt.get("options"),
                                           file_cfg))
    _say(args, f"{ckpt_path} already finished: it has {done} iterations and train.training_iters "
               f"is {cfg.train.training_iters}, so there is nothing to train (raise "
               "--training_iters to go on)" + (f"; wrote the missing {', '.join(written)}"
                                               if written else ""))


# -- modes ---------------------------------------------------------------------
def run_train(args, cfg: Config, resume: bool) -> None:
    from .data import build_dataset, build_loader
    from .data.toy import is_toy
    from .diffusion import GaussianDiffusion
    from .models import build_model
    from .pretrained import compare_model_configs
    from .train.checkpoint import load_checkpoint
    from .train.dist import init_distributed
    from .train.trainer import Trainer, find_resume_checkpoint
    import paddle

    init_distributed()
    ckpt, ckpt_path = None, None
    if resume:
        ckpt_path = find_resume_checkpoint(cfg, args.resume_ckpt_path)
        if ckpt_path is None:
            raise CheckpointError(f"nothing to resume: no {cfg.train.ckpt_prefix}_ckpt_iter_*.pdparam "
                                  f"in {cfg.train.ckpt_dir!r}; pass --resume_ckpt_path or use --mode train")
        ckpt = load_checkpoint(ckpt_path)
        if "config" not in ckpt or "ckpt_idx" not in ckpt:
            raise CheckpointError(f"{ckpt_path} is not a ppddpm training checkpoint (it lacks "
                                  "'config' or 'ckpt_idx'); convert it with python -m ppddpm.convert")
        compare_model_configs(Config.from_dict(ckpt["config"], strict=False).model, cfg.model, ckpt_path)
        if int(ckpt["ckpt_idx"]) + 1 >= cfg.train.training_iters:
            with _claim_run_folder(args, cfg, resume):
                return _complete_finished_run(args, cfg, ckpt, ckpt_path)
    paddle.seed(cfg.train.seed)  # the initial weights
    model = build_model(cfg.model)
    diffusion = GaussianDiffusion.from_config(cfg.diffusion)
    if ckpt is not None and not np.allclose(np.asarray(ckpt["betas"]), diffusion.betas, rtol=1e-12):
        raise CheckpointError(f"{ckpt_path} was trained with other betas than this config "
                              "gives; resume with the config it was trained with")
    dataset = build_dataset(cfg.data)
    with _claim_run_folder(args, cfg, resume):  # one run per checkpoint folder
        trainer = Trainer(cfg, model, diffusion, dataset, options=vars(args), progress=not args.quiet)
        if ckpt is not None:
            trainer.load_state(ckpt, ckpt_path)
            _say(args, f"resuming {ckpt_path} at iteration {trainer.iteration}")
        # Each iteration takes accum_steps batches of micro_batch per rank (see the loader's
        # docstring): the same examples as one process with the whole global batch.
        accum = cfg.train.accum_steps
        loader = build_loader(dataset, trainer.micro_batch, num_workers=cfg.data.num_workers,
                              seed=cfg.train.seed, start_step=trainer.iteration * accum, infinite=True)
        done = trainer.fit(loader)
    _say(args, f"trained {done} iterations; last checkpoint {trainer.last_saved}")
    if is_toy(cfg.data.dataset):  # 2-D points: the demo's scatter, GIF and quality figures
        from .toy_output import final_report
        final_report(trainer, lambda message: _say(args, message))


def run_convert(args, cfg: Config) -> None:
    from .pretrained import save_inference_file
    from .train.checkpoint import inference_path, load_checkpoint
    from .train.trainer import find_resume_checkpoint

    src = find_resume_checkpoint(cfg, args.resume_ckpt_path)
    if src is None:
        raise CheckpointError(f"no training checkpoint to convert in {cfg.train.ckpt_dir!r}; "
                              "pass --resume_ckpt_path")
    ckpt = load_checkpoint(src)
    entry = "model_ema" if args.convert_ema else "model"
    if entry not in ckpt or "ckpt_idx" not in ckpt:
        raise CheckpointError(f"{src} has no {entry!r} or 'ckpt_idx' entry; is it a training checkpoint?")
    file_cfg = Config.from_dict(ckpt["config"], strict=False) if "config" in ckpt else cfg
    iters = int(ckpt["ckpt_idx"]) + 1
    out = inference_path(cfg.train.ckpt_dir, cfg.train.ckpt_prefix, iters, ema=args.convert_ema)
    save_inference_file(out, ckpt[entry], ckpt["betas"], ckpt.get("options"), file_cfg)
    _say(args, f"wrote {out} ({'EMA' if args.convert_ema else 'raw'} weights of iteration {iters})")


def _sampling_setup(args, cfg: Config):
    from .diffusion import GaussianDiffusion
    from .images import parse_num_images
    from .pretrained import load_pretrained
    from .sampling import build_sampler, image_shape

    n, rows, cols = parse_num_images(cfg.sample.num_images)
    path = args.pretrained_path
    if not path:
        raise CheckpointError("denoise needs --pretrained_path (an inference file, training "
                              "checkpoint or original .pdparam)")
    expect = cfg.model if any(o.startswith("model.") for o in args.override) else None
    model, diffusion, file_cfg = load_pretrained(path, map_config=expect)
    if args.var_type is not None and args.var_type != diffusion.var_type.value:
        diffusion = GaussianDiffusion(diffusion.betas, diffusion.mean_type, args.var_type,
                                      diffusion.loss_type)
    try:
        sampler = build_sampler(diffusion, cfg.sample)
    except ValueError as exc:
        raise ConfigError(f"sampler settings: {exc}") from None
    model = _engine(args, model, image_shape(file_cfg.model))
    return model, sampler, image_shape(file_cfg.model), (n, rows, cols)


def _engine(args, model, shape):
    """--engine: auto uses the Paddle Inference predictor on CPU (dygraph on GPU)."""
    import paddle
    from .engine import make_engine
    kind = args.engine
    if kind == "auto" and (paddle.get_device().startswith("gpu") or list(shape) == [2, 1, 1]):
        kind = "dygraph"  # also for the 2-D toy MLP: its dygraph is ~2x faster than the predictor
    return make_engine(model, kind, image_shape=shape)


def run_denoise(args, cfg: Config) -> None:
    from .images import save_grid, save_individual, save_npz, save_sequence
    from .sampling import generate, generate_sequence, sampler_description
    from .train import dist

    dist.init_distributed()

    model, sampler, shape, (n, rows, cols) = _sampling_setup(args, cfg)
    batch = cfg.sample.batchsize or cfg.train.batchsize
    out_dir, postfix = cfg.sample.sample_dir, cfg.sample.sample_postfix
    _say(args, f"sampling {n} images of {shape} with {sampler_description(sampler)}, batch {batch}")
    if list(shape) == [2, 1, 1]:  # 2-D points (toy sets): scatter, GIF and quality JSON
        from .toy_output import run_toy_denoise
        return run_toy_denoise(args, cfg, model, sampler, lambda message: _say(args, message))
    progress = not args.quiet
    if args.sequence:
        if not dist.is_main():
            return  # a few images: rank 0 draws them alone
        x0_frames, xt_frames = generate_sequence(model, sampler, n, shape, batch,
                                                 every=args.sequence_every, seed=cfg.sample.seed,
                                                 progress=progress)
        png = os.path.join(out_dir, f"sequence_{postfix}.png")
        gif = os.path.join(out_dir, f"sequence_{postfix}.gif")
        save_sequence(x0_frames, png)
        save_sequence(xt_frames, os.path.join(out_dir, f"sequence_xt_{postfix}.png"), gif_path=gif,
                      gif_layout=(rows, cols))
        _say(args, f"wrote {png} (predicted x0, {len(x0_frames)} frames per image) and {gif}")
        return
    # Under paddle.distributed each rank draws a contiguous share of the images; image i
    # depends only on (seed, i), so the set is the same whatever the number of ranks.
    start, stop = dist.shard(n)
    mine = generate(model, sampler, stop - start, shape, batch, seed=cfg.sample.seed,
                    index_offset=start, progress=progress and dist.is_main())
    images = dist.gather_to_main(mine, n)
    if not dist.is_main():
        return
    path = save_grid(images, os.path.join(out_dir, f"sample_{postfix}.png"), rows, cols)
    _say(args, f"wrote {path}")
    if args.save_individual:
        folder = os.path.join(out_dir, postfix)
        save_individual(images, folder)
        _say(args, f"wrote {n} PNGs to {folder}/")
    if args.save_npz:
        _say(args, f"wrote {save_npz(images, os.path.join(out_dir, postfix + '.npz'))}")


def script_main(script_file: str, config_name: str, ddim: bool = False) -> None:
    """The whole body of a run script: its YAML in configs/ and, for the DDIM scripts,
    the DDIM sampler preselected with denoise as the default mode."""
    import __main__
    here = os.path.dirname(os.path.abspath(script_file))
    preset = ["sample.sampler=ddim"] if ddim else []
    sys.exit(main(os.path.join(here, "configs", config_name), __main__.__doc__, preset=preset,
                  default_mode="denoise" if ddim else "train", process_exits=True))


def main(default_config: str, description: str, preset: Sequence[str] = (),
         default_mode: str = "train", argv: Optional[Sequence[str]] = None,
         process_exits: bool = False) -> int:
    """Parse the command line and run one mode. Errors a user can fix exit with status 2
    and a one-line message, without a traceback. ``process_exits``: the process ends after
    this call (the run scripts), so stop signals arriving then are ignored instead of
    killing it with its files already in order (other ranks' launchers send them late)."""
    from .train.signals import Interrupted, StopSignals, exit_status, signal_name
    args = build_parser(description).parse_args(argv)
    mode = args.mode or default_mode
    if mode == "train" and args.resume:
        mode = "resume"
    # SIGINT/SIGTERM/SIGHUP end any mode with one line and status 128 + signal; training
    # installs its own handlers that finish the iteration and save (train/signals.py).
    stop = StopSignals(raise_at_once=True, ignore_after=process_exits)
    try:
        cfg = resolve_config(args, default_config, preset)
        _set_device(args)
        with stop:  # after Paddle's import, which installs its own SIGTERM handler
            _run_mode(args, cfg, mode)
    except Interrupted as exc:  # training stopped by a signal, its checkpoint saved
        print(str(exc), file=sys.stderr)
        return exc.exit_code
    except BaseException as exc:
        # A signal may surface as SignalExit or, raised inside Paddle's C++, as another error.
        signum = getattr(exc, "signum", None) or stop.signum
        if signum is not None and not isinstance(exc, SystemExit):
            print(f"interrupted by {signal_name(signum)} ({mode}); files already written are "
                  "complete, unfinished ones were not written", file=sys.stderr)
            return exit_status(signum)
        if isinstance(exc, PPDDPMError):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if isinstance(exc, KeyboardInterrupt):
            print("interrupted", file=sys.stderr)
            return 130
        raise
    return 0


def _run_mode(args, cfg: Config, mode: str) -> None:
    if mode in ("train", "resume"):
        run_train(args, cfg, resume=mode == "resume")
    elif mode == "convert":
        run_convert(args, cfg)
    elif mode in ("eval", "fid_stats"):
        from .evaluate import run_eval, run_fid_stats
        (run_eval if mode == "eval" else run_fid_stats)(args, cfg)
    else:
        run_denoise(args, cfg)
