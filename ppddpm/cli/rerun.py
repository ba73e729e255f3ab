"""What a plain rerun does in a script whose run continues (run_toy.py).

``python run_toy.py`` a second time finds its own checkpoints in its folder. Instead of
refusing, as ``--mode train`` does for the paper scripts, it continues that run: a finished
run says so and shows its figures again; an interrupted one trains on from its last
checkpoint. It only applies when the command line names no mode (no ``--mode``, no
``--resume``, no ``--overwrite``); ``--overwrite True`` starts afresh, and another data set or
config has its own folder (``toy_out/{dataset}/``), so it starts its own run.
"""
from __future__ import annotations

from ..config import Config, ConfigError
from ..runtime.progress import say
from ..train.checkpoint import list_checkpoints
from .args import was_given

HINT = "--overwrite True starts again"


def rerun_mode(args, cfg: Config, mode: str, continues: bool) -> str:
    """``resume`` in place of an unnamed ``train`` when ``continues`` and the checkpoint
    folder already holds this run's checkpoints; otherwise ``mode``."""
    if not continues or mode != "train" or any(was_given(args, flag) for flag in
                                               ("mode", "resume", "overwrite")):
        return mode
    found = list_checkpoints(cfg.train.ckpt_dir, cfg.train.ckpt_prefix)
    if not found:
        return mode
    args.continued = True
    say(f"{cfg.train.ckpt_dir} already holds a run of this config (iteration {found[-1][0]} "
        f"of {cfg.train.training_iters}): continuing it; {HINT}", args.quiet)
    return "resume"


def continued(args) -> bool:
    """Whether ``rerun_mode`` turned this command into a resume."""
    return bool(getattr(args, "continued", False))


def refused_continue(args, exc: ConfigError, ckpt_dir: str) -> ConfigError:
    """A continued run whose command line changes the model or the diffusion: the way out
    is a fresh start or a folder of its own, not the --mode train that resume suggests."""
    if not continued(args):
        return exc
    head = str(exc).split("; resume builds")[0]
    return ConfigError(f"{head}; a rerun without --mode continues the run in {ckpt_dir}: start "
                       "it again with --overwrite True, or give this one its own --ckpt_dir, "
                       "--sample_dir and --log_dir")
