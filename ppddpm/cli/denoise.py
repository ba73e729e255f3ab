"""``--mode denoise``: sample a weights file into a grid, a progressive sequence, single PNGs
or an ``.npz``; a few named steps over ``pipeline.prepare_sampling`` and the samplers."""
from __future__ import annotations

import os
import shutil
from typing import NamedTuple, Optional

import numpy as np

from ..config import Config, ConfigError
from ..data.labels import grid_labels, random_labels, sampling_classes
from ..evaluate.resumable import chunk_files, finished_images, generate_resumable, sampling_meta
from ..io.grid_output import SamplePaths, grid_layout, maybe_grey, sample_paths, show_image
from ..io.images import image_format, save_grid, save_individual, save_npz, save_sequence
from ..pipeline import SamplingSetup, prepare_sampling, run_class_tag
from ..runtime import dist
from ..runtime.progress import note, say
from ..samplers import generate_sequence, sampler_description
from ..toy.output import run_toy_denoise
from .args import was_given
from .outputs import output_folders, prepare_output_dirs
from .resolve import expected_model
from .script_match import match_file_to_script


class DenoisePlan(NamedTuple):
    """What one denoise run draws and where it writes it."""
    setup: SamplingSetup
    num_images: int
    rows: int
    cols: int
    batch: int
    labels: Optional[np.ndarray]   # class of each image (conditional models), else None
    paths: SamplePaths


def run_denoise(args, cfg: Config) -> None:
    dist.init_distributed()
    prepare_denoise_folders(args, cfg)
    setup = sampling_setup(args, cfg)
    plan = plan_denoise(args, cfg, setup)
    if setup.warning:   # after every check: an error stays one line
        note(setup.warning)
    say(f"sampling {plan.num_images} images of {setup.shape} with "
        f"{sampler_description(setup.sampler)}, batch {plan.batch}"
        f"{conditioning_description(cfg, plan)}", args.quiet)
    if list(setup.shape) == [2, 1, 1]:  # 2-D points (toy sets): scatter, GIF and quality JSON
        if setup.classifier is not None:
            raise ConfigError("--classifier_path: classifier guidance is for image models, "
                              "not the 2-D toy sets")
        return run_toy_denoise(cfg, setup.model, setup.sampler, lambda m: say(m, args.quiet),
                               args.pretrained_path, sequence=bool(args.sequence),
                               save_path=args.save_path, progress=not args.quiet,
                               show=args.show, save_npz=args.save_npz, labels=plan.labels,
                               guidance_scale=cfg.sample.guidance_scale)
    if args.sequence:
        return write_sequence(args, cfg, plan)
    images = draw_images(args, cfg, plan)
    if images is not None:   # rank 0 holds them all
        write_images(args, cfg, plan, images)


def conditioning_description(cfg: Config, plan: DenoisePlan) -> str:
    """', classes 3,5, classifier-free guidance 2' for a conditional or classifier-guided
    run; '' otherwise."""
    if plan.labels is None:
        return ""
    spec = str(cfg.sample.class_label or "").strip()
    classes = ",".join(str(c) for c in dict.fromkeys(int(c) for c in plan.labels))
    if not spec and len(classes) > 40:
        classes = "random"
    named = f" ({spec})" if spec and spec != classes else ""
    classifier = plan.setup.classifier
    if classifier is not None:
        guided = f", classifier guidance {classifier.scale:g} ({cfg.sample.classifier_path})"
    elif cfg.sample.guidance_scale:
        guided = f", classifier-free guidance {cfg.sample.guidance_scale:g}"
    else:
        guided = ", no guidance"
    return f", class{'es' if ',' in classes or classes == 'random' else ''} {classes}{named}{guided}"


def prepare_denoise_folders(args, cfg: Config) -> None:
    """Write-tested before sampling: the folder of --save_path, and sample_dir unless
    --save_path replaces everything written there."""
    uses_sample_dir = not args.save_path or args.save_individual or args.save_npz
    if args.save_path:
        image_format(args.save_path)   # an extension Pillow cannot write fails now
    prepare_output_dirs((output_folders(cfg, "denoise") if uses_sample_dir else []) +
                        ([("--save_path", os.path.dirname(os.path.abspath(args.save_path)))]
                         if args.save_path else []))


def sampling_setup(args, cfg: Config) -> SamplingSetup:
    """The command line's side of pipeline.prepare_sampling."""
    return prepare_sampling(cfg, args.pretrained_path, engine=args.engine,
                            var_type=args.var_type, map_config=expected_model(args, cfg))


def plan_denoise(args, cfg: Config, setup: SamplingSetup) -> DenoisePlan:
    """The grid, batch, classes and file names; a note when the file is another script's."""
    classes = sampling_classes(cfg.sample, setup.file_config, args.pretrained_path,
                               setup.classifier_config)
    mismatch = match_file_to_script(setup.file_config, cfg, args.pretrained_path,
                                    postfix_given=was_given(args, "sample_postfix"))
    if mismatch:
        note(mismatch)
    if not was_given(args, "sample_postfix"):
        cfg.sample.sample_postfix += run_class_tag(cfg.sample, setup)
    n, rows, cols = setup.grid
    rows, cols = grid_layout(n, rows, cols, args.nrow)
    if classes is not None:
        labels = grid_labels(classes, n, rows, cols)
    elif setup.classifier is not None:   # classifier guidance without --class_label
        labels = random_labels(cfg.sample.seed, n, setup.classifier_config.model.num_classes)
    else:
        labels = None
    return DenoisePlan(setup, n, rows, cols, batch=cfg.sample.batchsize or cfg.train.batchsize,
                       labels=labels,
                       paths=sample_paths(cfg.sample.sample_dir, cfg.sample.sample_postfix,
                                          args.save_path))


def write_sequence(args, cfg: Config, plan: DenoisePlan) -> None:
    """The progressive generation: predicted x0 over time (PNG), x_t over time (PNG and GIF)."""
    if not dist.is_main():
        return  # a few images: rank 0 draws them alone
    setup = plan.setup
    x0_frames, xt_frames = generate_sequence(
        setup.model, setup.sampler, plan.num_images, setup.shape, plan.batch,
        every=args.sequence_every or cfg.sample.sequence_every, seed=cfg.sample.seed,
        progress=not args.quiet, labels=plan.labels,
        guidance_scale=cfg.sample.guidance_scale, classifier=setup.classifier)
    png, gif = plan.paths.sequence, plan.paths.gif
    save_sequence([maybe_grey(f, args.to_grayscale) for f in x0_frames], png)
    save_sequence([maybe_grey(f, args.to_grayscale) for f in xt_frames], plan.paths.sequence_xt,
                  gif_path=gif, gif_layout=(plan.rows, plan.cols))
    say(f"wrote {png} (predicted x0, {len(x0_frames)} frames per image) and {gif}", args.quiet)
    if args.show:
        show_image(png, lambda message: print(message, flush=True))


def partial_folder(plan: DenoisePlan) -> str:
    """Where the finished batches of an unfinished run wait: beside the grid, as
    ``sample_{postfix}.partial/`` (removed once every output is written)."""
    return os.path.splitext(plan.paths.grid)[0] + ".partial"


def individual_folder(cfg: Config) -> str:
    return os.path.join(cfg.sample.sample_dir, cfg.sample.sample_postfix)


def draw_images(args, cfg: Config, plan: DenoisePlan) -> Optional[np.ndarray]:
    """Every image as uint8 NHWC on rank 0, None on the others. Each batch is on disk as soon
    as it is drawn (evaluate/resumable.py), so a run cut short by Ctrl-C or a kill goes on
    from its finished batches when the same command runs again; with --save_individual, the
    batch's PNGs are written at once too. Under paddle.distributed the batches are dealt to
    the ranks; image i depends only on (seed, i), so the set is the same whatever the number
    of ranks or the batches already done."""
    setup, folder = plan.setup, partial_folder(plan)
    meta = sampling_meta(args.pretrained_path, sampler_description(setup.sampler), cfg.sample,
                         setup.shape, classifier=setup.classifier)
    if plan.labels is not None:
        meta.update(labels=[int(c) for c in plan.labels], guidance_scale=cfg.sample.guidance_scale)
    done = finished_images(folder, plan.num_images)
    if done:
        say(f"going on from {done} of {plan.num_images} images already drawn in {folder}/",
            args.quiet)

    earlier = [(a, b) for a, b, _ in chunk_files(folder)] if done else []

    def write_pngs(start: int, images: np.ndarray) -> None:
        save_individual(maybe_grey(images, args.to_grayscale), individual_folder(cfg), start)

    images = generate_resumable(setup.model, setup.sampler, plan.num_images, setup.shape,
                                plan.batch, cfg.sample.seed, folder, meta,
                                progress=not args.quiet, labels=plan.labels,
                                guidance_scale=cfg.sample.guidance_scale,
                                classifier=setup.classifier, step_progress=not args.quiet,
                                on_batch=write_pngs if args.save_individual else None)
    if images is not None and args.save_individual:   # the batches an earlier run drew
        for a, b in earlier:
            write_pngs(a, images[a:b])
    return images


def write_images(args, cfg: Config, plan: DenoisePlan, images: np.ndarray) -> None:
    """The grid and the .npz that were asked for (the single PNGs are written as their
    batches are drawn)."""
    grey = maybe_grey(images, args.to_grayscale)
    path = save_grid(grey, plan.paths.grid, plan.rows, plan.cols)
    say(f"wrote {path}", args.quiet)
    if args.show:
        show_image(path, lambda message: print(message, flush=True))
    out_dir, postfix = cfg.sample.sample_dir, cfg.sample.sample_postfix
    if args.save_individual:   # written batch by batch (draw_images)
        say(f"wrote {plan.num_images} PNGs to {individual_folder(cfg)}/", args.quiet)
    if args.save_npz:
        say(f"wrote {save_npz(images, os.path.join(out_dir, postfix + '.npz'))}", args.quiet)
    shutil.rmtree(partial_folder(plan), ignore_errors=True)   # every output is written
