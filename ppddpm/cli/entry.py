"""The shared entry point of every run script: parse, resolve the config, pick the device,
run one mode, and turn a user's error or a signal into one line and an exit status."""
from __future__ import annotations

import os
import sys
from typing import Optional, Sequence

import __main__  # the run script, whose docstring is its --help description

from ..config import Config
from ..errors import PPDDPMError
from ..models.conv import conv_backend, set_conv_backend
from ..runtime.device import select_device, use_compute_threads
from ..runtime.dist import local_world_size
from ..runtime.heap import release_freed_memory
from ..runtime.progress import note, route_warnings_through_bars
from ..train.signals import Interrupted, StopSignals, exit_status, signal_name
from .convert_mode import run_convert
from .denoise import run_denoise
from .edit_args import EDIT_MODES
from .edit_mode import mode_preset, run_edit
from .eval_mode import run_eval_mode
from .parse import parse_command_line
from .rerun import rerun_mode
from .resolve import resolve_config
from .train_mode import run_train
from .unread import check_flags_are_read


# What a rerun of the same command does after a signal, per mode.
GOES_ON = {mode: "; the same command again goes on from the batches already drawn"
           for mode in ("denoise", "eval", "encode", "img2img", "inpaint")}


def set_device(args) -> str:
    """--device (auto: the GPU when there is one). On the CPU: the thread count
    (runtime/threads.py) and the dygraph conv kernels (--conv_backend, models/conv.py);
    --low_memory (runtime/heap.py). Python warnings are printed through the progress bars."""
    route_warnings_through_bars()
    device = select_device(getattr(args, "device", "auto"))
    set_conv_backend(args.conv_backend or conv_backend())
    if device == "cpu":
        use_compute_threads(local_world_size())
    if args.low_memory and not release_freed_memory():
        note("note: --low_memory has no effect here (not glibc, or MALLOC_MMAP_THRESHOLD_ is "
             "already set)")
    return device


def script_main(script_file: str, config_name: str, ddim: bool = False,
                rerun_continues: bool = False) -> None:
    """The whole body of a run script: its YAML in configs/ and, for the DDIM scripts,
    the DDIM sampler preselected with denoise as the default mode. ``rerun_continues``: a
    rerun without --mode continues the run in its folder (cli/rerun.py; the toy demo)."""
    here = os.path.dirname(os.path.abspath(script_file))
    preset = ["sample.sampler=ddim"] if ddim else []
    sys.exit(main(os.path.join(here, "configs", config_name), __main__.__doc__, preset=preset,
                  default_mode="denoise" if ddim else "train", process_exits=True,
                  rerun_continues=rerun_continues))


def main(default_config: str, description: str, preset: Sequence[str] = (),
         default_mode: str = "train", argv: Optional[Sequence[str]] = None,
         process_exits: bool = False, rerun_continues: bool = False) -> int:
    """Parse the command line and run one mode. Errors a user can fix exit with status 2
    and a one-line message, without a traceback. ``process_exits``: the process ends after
    this call (the run scripts), so stop signals arriving then are ignored instead of
    killing it with its files already in order (other ranks' launchers send them late)."""
    route_warnings_through_bars()   # ppddpm's warnings as one line each, from the start
    args = parse_command_line(description, default_config, preset, default_mode, argv)
    mode = args.mode or default_mode
    if mode == "train" and args.resume:
        mode = "resume"
    # SIGINT/SIGTERM/SIGHUP end any mode with one line and status 128 + signal; training
    # installs its own handlers that finish the iteration and save (train/signals.py).
    stop = StopSignals(raise_at_once=True, ignore_after=process_exits)
    try:
        cfg = resolve_config(args, default_config, list(preset) + mode_preset(mode))
        mode = rerun_mode(args, cfg, mode, rerun_continues)
        check_flags_are_read(args, cfg, mode)
        set_device(args)
        with stop:  # after Paddle's import, which installs its own SIGTERM handler
            run_mode(args, cfg, mode)
    except Interrupted as exc:  # training stopped by a signal, its checkpoint saved
        print(str(exc), file=sys.stderr)
        return exc.exit_code
    except BaseException as exc:
        # A signal may surface as SignalExit or, raised inside Paddle's C++, as another error.
        signum = getattr(exc, "signum", None) or stop.signum
        if signum is not None and not isinstance(exc, SystemExit):
            print(f"interrupted by {signal_name(signum)} ({mode}); files already written are "
                  "complete, unfinished ones were not written" + GOES_ON.get(mode, ""),
                  file=sys.stderr)
            return exit_status(signum)
        if isinstance(exc, PPDDPMError):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if isinstance(exc, KeyboardInterrupt):
            print("interrupted", file=sys.stderr)
            return 130
        raise
    return 0



def run_mode(args, cfg: Config, mode: str) -> None:
    if mode in ("train", "resume"):
        run_train(args, cfg, resume=mode == "resume")
    elif mode == "convert":
        run_convert(args, cfg)
    elif mode in ("eval", "fid_stats"):
        run_eval_mode(args, cfg, mode)
    elif mode in EDIT_MODES:
        run_edit(args, cfg, mode)
    else:
        run_denoise(args, cfg)
