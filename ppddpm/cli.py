"""The shared entry point of every run script: ``--mode train | resume | convert | denoise``."""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Optional, Sequence

import numpy as np

from .cli_args import explicit_settings, overrides_from_args, was_given
from .config import Config, ConfigError, apply_overrides, load_config, set_value, validate
from .config_checks import checked_sampler, output_folders
from .outputs import prepare_output_dirs
from .errors import CheckpointError, PPDDPMError
from .progress import bars_wanted


def resolve_config(args, default_config: str, preset: Sequence[str] = (),
                   base: Optional[Config] = None) -> Config:
    """YAML (or ``base``, e.g. a checkpoint's config), then the script's preset (e.g. the DDIM
    sampler), then -o overrides, then flags."""
    cfg = base if base is not None else load_config(args.config or default_config)
    apply_overrides(cfg, list(preset) + list(args.override), check=False)  # checked with the flags
    for key, value in overrides_from_args(args):
        set_value(cfg, key, value)
    validate(cfg)
    # "{sampler}_cifar10_test" names DDPM and DDIM samples apart, as the original did.
    cfg.sample.sample_postfix = cfg.sample.sample_postfix.replace("{sampler}", cfg.sample.sampler)
    return cfg


def _set_device(args) -> str:
    """--device (auto: the GPU when there is one). On the CPU: the thread count (threads.py)
    and the dygraph conv kernels (--conv_backend, models/conv.py); --low_memory (heap.py).
    Python warnings are printed through the progress bars (progress.py)."""
    import paddle
    from .models.conv import conv_backend, set_conv_backend
    from .progress import route_warnings_through_bars
    from .threads import use_compute_threads
    from .train.dist import local_world_size
    route_warnings_through_bars()
    has_gpu = paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    requested = getattr(args, "device", "auto") or "auto"
    if requested == "gpu" and not has_gpu:
        why = "this Paddle is built without CUDA" if not paddle.is_compiled_with_cuda() \
            else "Paddle sees no GPU (check CUDA_VISIBLE_DEVICES and the driver)"
        raise ConfigError(f"--device gpu: {why}; use --device cpu (or auto)")
    device = requested if requested != "auto" else ("gpu" if has_gpu else "cpu")
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
    from .data.spec import check_model_matches_data
    from .data.toy import is_toy
    from .diffusion import GaussianDiffusion
    from .labels import setup_conditioning
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
        cfg = config_for_resume(args, ckpt, ckpt_path)  # the run's own config, then the flags
    # Before the first iteration: the grids' sampler and every output folder (write-tested).
    draws_samples = cfg.train.sample_interval > 0 or is_toy(cfg.data.dataset)
    if draws_samples:
        checked_sampler(GaussianDiffusion.from_config(cfg.diffusion), cfg.sample)
    prepare_output_dirs(output_folders(cfg, "train", draws_samples))
    dataset = build_dataset(cfg.data)
    setup_conditioning(cfg, dataset)   # model.num_classes and data.class_names from the data
    check_model_matches_data(dataset, cfg.model)
    if ckpt is not None:
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
    with _claim_run_folder(args, cfg, resume):  # one run per checkpoint folder
        trainer = Trainer(cfg, model, diffusion, dataset, options=vars(args),
                          progress=bars_wanted(args.quiet))
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


def config_for_resume(args, ckpt: dict, ckpt_path: str) -> Config:
    """The checkpoint's config in place of the YAML, then this command line's -o and flags;
    a change of the model, the diffusion or the image shape is refused (resume_config.py)."""
    from .resume_config import check_resume_overrides
    file_cfg = Config.from_dict(ckpt["config"], strict=False)
    cfg = resolve_config(args, "", base=Config.from_dict(ckpt["config"], strict=False))
    check_resume_overrides(file_cfg, cfg, explicit_settings(args), ckpt_path)
    return cfg


def convert_output_path(args, cfg: Config, src: str, iters: int) -> str:
    """--pretrained_path when given (the original's convert command), else the automatic
    name; never the training checkpoint being read, nor any other training checkpoint."""
    from .train.checkpoint import inference_path
    out = args.pretrained_path or inference_path(cfg.train.ckpt_dir, cfg.train.ckpt_prefix,
                                                 iters, ema=args.convert_ema)
    same = os.path.exists(out) and os.path.samefile(out, src)
    if same or "_ckpt_iter_" in os.path.basename(out):
        raise CheckpointError(f"convert would write over the training checkpoint {out}"
                              f"{' it reads' if same else ''}; give --pretrained_path another "
                              "file name (e.g. ckpts/ddpm_cifar10_i800000_ema.pdparam)")
    return out


def run_convert(args, cfg: Config) -> None:
    from .pretrained import save_inference_file
    from .train.checkpoint import load_checkpoint
    from .train.trainer import find_resume_checkpoint

    src = find_resume_checkpoint(cfg, args.resume_ckpt_path)
    if src is None:
        raise CheckpointError(f"no training checkpoint to convert in {cfg.train.ckpt_dir!r}; "
                              "pass --resume_ckpt_path")
    prepare_output_dirs(output_folders(cfg, "convert") if not args.pretrained_path else
                        [("--pretrained_path", os.path.dirname(os.path.abspath(args.pretrained_path)))])
    ckpt = load_checkpoint(src)
    entry = "model_ema" if args.convert_ema else "model"
    if entry not in ckpt or "ckpt_idx" not in ckpt:
        raise CheckpointError(f"{src} has no {entry!r} or 'ckpt_idx' entry; is it a training checkpoint?")
    file_cfg = Config.from_dict(ckpt["config"], strict=False) if "config" in ckpt else cfg
    iters = int(ckpt["ckpt_idx"]) + 1
    out = convert_output_path(args, cfg, src, iters)
    if getattr(args, "convert_format", None) == "safetensors" and not args.pretrained_path \
            and not out.endswith(".safetensors"):
        out = os.path.splitext(out)[0] + ".safetensors"   # the extension picks the format
    save_inference_file(out, ckpt[entry], ckpt["betas"], ckpt.get("options"), file_cfg)
    _say(args, f"wrote {out} ({'EMA' if args.convert_ema else 'raw'} weights of iteration {iters})")


def _expected_model(args, cfg: Config):
    """The network the user asked for with -o model.*, else None (take the file's)."""
    return cfg.model if any(o.startswith("model.") for o in args.override) else None


def sampling_setup(args, cfg: Config):
    """The command line's side of sample_setup.prepare_sampling."""
    from .sample_setup import prepare_sampling
    return prepare_sampling(cfg, args.pretrained_path, engine=args.engine,
                            var_type=args.var_type, map_config=_expected_model(args, cfg))


def eval_options(args, cfg: Config):
    """evaluate.EvalOptions from the command line (--mode eval and fid_stats)."""
    from .evaluate import EvalOptions
    return EvalOptions(pretrained_path=args.pretrained_path, num_samples=args.num_samples,
                       samples=args.samples, metrics=args.metrics, fid_stats=args.fid_stats,
                       eval_out=args.eval_out, inception_weights=args.inception_weights,
                       inception_batch=args.inception_batch, engine=args.engine,
                       var_type=args.var_type, map_config=_expected_model(args, cfg),
                       quiet=args.quiet)


def run_denoise(args, cfg: Config) -> None:
    from .grid_output import grid_layout, maybe_grey, sample_paths, show_image
    from .images import save_grid, save_individual, save_npz, save_sequence
    from .labels import grid_labels, sampling_classes
    from .sampling import generate, generate_sequence, sampler_description
    from .script_match import match_file_to_script
    from .train import dist

    dist.init_distributed()
    # Write-tested before sampling: the folder of --save_path, and sample_dir unless
    # --save_path replaces everything written there.
    uses_sample_dir = not args.save_path or args.save_individual or args.save_npz
    prepare_output_dirs((output_folders(cfg, "denoise") if uses_sample_dir else []) +
                        ([("--save_path", os.path.dirname(os.path.abspath(args.save_path)))]
                         if args.save_path else []))

    setup = sampling_setup(args, cfg)
    model, sampler, shape, (n, rows, cols) = setup.model, setup.sampler, setup.shape, setup.grid
    classes = sampling_classes(cfg.sample, setup.file_config, args.pretrained_path)
    note = match_file_to_script(setup.file_config, cfg, args.pretrained_path,
                                postfix_given=was_given(args, "sample_postfix"))
    if note and dist.is_main():
        print(note, file=sys.stderr, flush=True)
    rows, cols = grid_layout(n, rows, cols, args.nrow)
    grey = lambda images: maybe_grey(images, args.to_grayscale)
    batch = cfg.sample.batchsize or cfg.train.batchsize
    out_dir, postfix = cfg.sample.sample_dir, cfg.sample.sample_postfix
    paths = sample_paths(out_dir, postfix, args.save_path)
    _say(args, f"sampling {n} images of {shape} with {sampler_description(sampler)}, batch {batch}")
    labels = None if classes is None else grid_labels(classes, n, rows, cols)
    guide = dict(labels=labels, guidance_scale=cfg.sample.guidance_scale)
    if list(shape) == [2, 1, 1]:  # 2-D points (toy sets): scatter, GIF and quality JSON
        from .toy_output import run_toy_denoise
        return run_toy_denoise(cfg, model, sampler, lambda message: _say(args, message),
                               args.pretrained_path, sequence=bool(args.sequence),
                               save_path=args.save_path, progress=bars_wanted(args.quiet),
                               show=args.show, save_npz=args.save_npz, **guide)
    progress = bars_wanted(args.quiet)
    if args.sequence:
        if not dist.is_main():
            return  # a few images: rank 0 draws them alone
        every = args.sequence_every or cfg.sample.sequence_every
        x0_frames, xt_frames = generate_sequence(model, sampler, n, shape, batch,
                                                 every=every, seed=cfg.sample.seed,
                                                 progress=progress, **guide)
        png, gif = paths.sequence, paths.gif
        save_sequence([grey(f) for f in x0_frames], png)
        save_sequence([grey(f) for f in xt_frames], paths.sequence_xt, gif_path=gif,
                      gif_layout=(rows, cols))
        _say(args, f"wrote {png} (predicted x0, {len(x0_frames)} frames per image) and {gif}")
        if args.show:
            show_image(png, lambda message: print(message, flush=True))
        return
    # Under paddle.distributed each rank draws a contiguous share of the images; image i
    # depends only on (seed, i), so the set is the same whatever the number of ranks.
    start, stop = dist.shard(n)
    mine = generate(model, sampler, stop - start, shape, batch, seed=cfg.sample.seed,
                    index_offset=start, progress=progress and dist.is_main(),
                    labels=None if labels is None else labels[start:stop],
                    guidance_scale=cfg.sample.guidance_scale)
    images = dist.gather_to_main(mine, n)
    if not dist.is_main():
        return
    path = save_grid(grey(images), paths.grid, rows, cols)
    _say(args, f"wrote {path}")
    if args.show:
        show_image(path, lambda message: print(message, flush=True))
    if args.save_individual:
        folder = os.path.join(out_dir, postfix)
        save_individual(grey(images), folder)
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
    from .cli_parse import parse_command_line
    from .train.signals import Interrupted, StopSignals, exit_status, signal_name
    args = parse_command_line(description, default_config, preset, default_mode, argv)
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
        if mode == "eval":   # results (and partial samples) go to sample_dir or --eval_out;
            # tested and left uncreated: eval makes nothing before its own early checks pass
            eval_out = [("--eval_out", os.path.dirname(args.eval_out))] if args.eval_out else []
            prepare_output_dirs(eval_out if args.samples and eval_out else
                                output_folders(cfg, "eval", extra=eval_out), keep=False)
        (run_eval if mode == "eval" else run_fid_stats)(eval_options(args, cfg), cfg)
    else:
        run_denoise(args, cfg)
