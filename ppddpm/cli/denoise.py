"""``--mode denoise``: sample a weights file into a grid, a progressive sequence, single PNGs
or an ``.npz``; a few named steps over ``pipeline.prepare_sampling`` and the samplers."""
from __future__ import annotations

import os
from typing import NamedTuple, Optional

import numpy as np

from ..config import Config
from ..data.labels import grid_labels, sampling_classes
from ..io.grid_output import SamplePaths, grid_layout, maybe_grey, sample_paths, show_image
from ..io.images import save_grid, save_individual, save_npz, save_sequence
from ..pipeline import SamplingSetup, prepare_sampling
from ..runtime import dist
from ..runtime.progress import note, say
from ..samplers import generate, generate_sequence, sampler_description
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
    say(f"sampling {plan.num_images} images of {setup.shape} with "
        f"{sampler_description(setup.sampler)}, batch {plan.batch}", args.quiet)
    if list(setup.shape) == [2, 1, 1]:  # 2-D points (toy sets): scatter, GIF and quality JSON
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


def prepare_denoise_folders(args, cfg: Config) -> None:
    """Write-tested before sampling: the folder of --save_path, and sample_dir unless
    --save_path replaces everything written there."""
    uses_sample_dir = not args.save_path or args.save_individual or args.save_npz
    prepare_output_dirs((output_folders(cfg, "denoise") if uses_sample_dir else []) +
                        ([("--save_path", os.path.dirname(os.path.abspath(args.save_path)))]
                         if args.save_path else []))


def sampling_setup(args, cfg: Config) -> SamplingSetup:
    """The command line's side of pipeline.prepare_sampling."""
    return prepare_sampling(cfg, args.pretrained_path, engine=args.engine,
                            var_type=args.var_type, map_config=expected_model(args, cfg))


def plan_denoise(args, cfg: Config, setup: SamplingSetup) -> DenoisePlan:
    """The grid, batch, classes and file names; a note when the file is another script's."""
    classes = sampling_classes(cfg.sample, setup.file_config, args.pretrained_path)
    mismatch = match_file_to_script(setup.file_config, cfg, args.pretrained_path,
                                    postfix_given=was_given(args, "sample_postfix"))
    if mismatch:
        note(mismatch)
    n, rows, cols = setup.grid
    rows, cols = grid_layout(n, rows, cols, args.nrow)
    return DenoisePlan(setup, n, rows, cols, batch=cfg.sample.batchsize or cfg.train.batchsize,
                       labels=None if classes is None else grid_labels(classes, n, rows, cols),
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
        guidance_scale=cfg.sample.guidance_scale)
    png, gif = plan.paths.sequence, plan.paths.gif
    save_sequence([maybe_grey(f, args.to_grayscale) for f in x0_frames], png)
    save_sequence([maybe_grey(f, args.to_grayscale) for f in xt_frames], plan.paths.sequence_xt,
                  gif_path=gif, gif_layout=(plan.rows, plan.cols))
    say(f"wrote {png} (predicted x0, {len(x0_frames)} frames per image) and {gif}", args.quiet)
    if args.show:
        show_image(png, lambda message: print(message, flush=True))


def draw_images(args, cfg: Config, plan: DenoisePlan) -> Optional[np.ndarray]:
    """Every image as uint8 NHWC on rank 0, None on the others. Under paddle.distributed each
    rank draws a contiguous share; image i depends only on (seed, i), so the set is the same
    whatever the number of ranks."""
    start, stop = dist.shard(plan.num_images)
    setup = plan.setup
    mine = generate(setup.model, setup.sampler, stop - start, setup.shape, plan.batch,
                    seed=cfg.sample.seed, index_offset=start,
                    progress=not args.quiet and dist.is_main(),
                    labels=None if plan.labels is None else plan.labels[start:stop],
                    guidance_scale=cfg.sample.guidance_scale)
    images = dist.gather_to_main(mine, plan.num_images)
    return images if dist.is_main() else None


def write_images(args, cfg: Config, plan: DenoisePlan, images: np.ndarray) -> None:
    """The grid, then the single PNGs and the .npz that were asked for."""
    grey = maybe_grey(images, args.to_grayscale)
    path = save_grid(grey, plan.paths.grid, plan.rows, plan.cols)
    say(f"wrote {path}", args.quiet)
    if args.show:
        show_image(path, lambda message: print(message, flush=True))
    out_dir, postfix = cfg.sample.sample_dir, cfg.sample.sample_postfix
    if args.save_individual:
        folder = os.path.join(out_dir, postfix)
        save_individual(grey, folder)
        say(f"wrote {plan.num_images} PNGs to {folder}/", args.quiet)
    if args.save_npz:
        say(f"wrote {save_npz(images, os.path.join(out_dir, postfix + '.npz'))}", args.quiet)
