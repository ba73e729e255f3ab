"""Output folders are created and write-tested before a run starts.

A folder that cannot be created, is not writable, or sits on a full disk is reported
at start-up in one line naming the flag, the path and the reason, instead of at the first
checkpoint or sample grid thousands of iterations later.
"""
from __future__ import annotations

import os
import tempfile
from typing import Iterable, List, Sequence, Tuple

from ..config import Config, label
from ..errors import PPDDPMError
from .edit_args import EDIT_MODES

PROBE_BYTES = b"ppddpm write test\n" * 256   # 4.5 KiB: more than one filesystem block


class OutputDirError(PPDDPMError):
    """An output folder cannot be created or written to."""


def prepare_output_dir(path: str, label: str = "output folder", keep: bool = True) -> str:
    """Create ``path`` (and its parents) and write, fsync and delete a small file in it.
    ``keep=False`` removes again the folders it created (the writers make them when needed)."""
    folder = path or "."   # an empty setting means the current folder (os.path.join("", name))
    created, parent = [], os.path.abspath(folder)
    while not os.path.lexists(parent):   # deepest first
        created.append(parent)
        parent = os.path.dirname(parent)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise OutputDirError(f"{label} {path!r}: cannot create the folder: "
                             f"{exc.strerror or exc}") from None
    if not os.path.isdir(folder):
        raise OutputDirError(f"{label} {path!r}: exists and is not a folder")
    probe = None
    try:
        fd, probe = tempfile.mkstemp(prefix=".ppddpm-write-test-", dir=folder)
        with os.fdopen(fd, "wb") as fh:
            fh.write(PROBE_BYTES)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:   # EACCES, EROFS, ENOSPC, EDQUOT, EFBIG ...
        raise OutputDirError(f"{label} {path!r}: cannot write to the folder: "
                             f"{exc.strerror or exc}") from None
    finally:
        if probe is not None and os.path.exists(probe):
            os.remove(probe)
        for made in created if not keep else []:
            os.rmdir(made)
    return folder


def prepare_output_dirs(folders: Iterable[Tuple[str, str]], keep: bool = True) -> None:
    """``prepare_output_dir`` for every (label, path); the first failure raises."""
    for name, path in folders:
        prepare_output_dir(path, name, keep)


def output_folders(cfg: Config, mode: str, draws_samples: bool = False,
                   extra: Sequence[Tuple[str, str]] = ()) -> List[Tuple[str, str]]:
    """(label, path) of the folders ``mode`` writes to, for ``prepare_output_dirs``."""
    training = ["train.ckpt_dir", "train.log_dir"] + (["sample.sample_dir"] if draws_samples else [])
    keys = {"train": training, "resume": training, "convert": ["train.ckpt_dir"],
            "denoise": ["sample.sample_dir"], "eval": ["sample.sample_dir"],
            **{m: ["sample.sample_dir"] for m in EDIT_MODES}}.get(mode, [])
    sections = {k: getattr(getattr(cfg, k.split(".")[0]), k.split(".")[1]) for k in keys}
    return [(label(k), path) for k, path in sections.items()] + list(extra)
