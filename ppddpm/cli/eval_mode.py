"""``--mode eval`` and ``--mode fid_stats``: the command line's side of ppddpm.evaluate."""
from __future__ import annotations

import os

from ..config import Config
from ..evaluate import EvalOptions, run_eval, run_fid_stats
from .args import was_given
from .outputs import output_folders, prepare_output_dirs
from .resolve import expected_model


def eval_options(args, cfg: Config) -> EvalOptions:
    """evaluate.EvalOptions from the command line (--mode eval and fid_stats)."""
    return EvalOptions(pretrained_path=args.pretrained_path, num_samples=args.num_samples,
                       samples=args.samples, metrics=args.metrics, fid_stats=args.fid_stats,
                       eval_out=args.eval_out, inception_weights=args.inception_weights,
                       inception_batch=args.inception_batch, engine=args.engine,
                       var_type=args.var_type, map_config=expected_model(args, cfg),
                       quiet=args.quiet, name_classes=not was_given(args, "sample_postfix"))


def run_eval_mode(args, cfg: Config, mode: str) -> None:
    if mode == "eval":   # results (and partial samples) go to sample_dir or --eval_out;
        # tested and left uncreated: eval makes nothing before its own early checks pass
        eval_out = [("--eval_out", os.path.dirname(args.eval_out))] if args.eval_out else []
        prepare_output_dirs(eval_out if args.samples and eval_out else
                            output_folders(cfg, "eval", extra=eval_out), keep=False)
    (run_eval if mode == "eval" else run_fid_stats)(eval_options(args, cfg), cfg)
