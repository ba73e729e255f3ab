"""Paddle weight files: ``paddle.save`` written atomically, and read back through the
allow-list unpickler with every failure turned into one CheckpointError line.

Saves go to a hidden temp file in the same folder (".{name}.XXXX.tmp"), are fsynced and
then os.replace'd onto the target, so a process killed mid-save leaves the previous file
untouched.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Optional

import paddle

from ..errors import CheckpointError
from .files import atomic_write_path
from .safeload import UnsafeFileError, load_paddle_file
from .sniff import not_weights_reason

# Test hook: called with the temp path after the object is fully written, before
# the rename. Tests set it to pause there and kill the process.
_before_commit: Optional[Callable[[str], None]] = None


def atomic_save(obj: Any, path: str) -> str:
    """paddle.save ``obj`` to ``path`` atomically (temp + fsync + os.replace + dir fsync)."""
    def _write(tmp: str) -> None:
        paddle.save(obj, tmp)
        if _before_commit is not None:
            _before_commit(tmp)
    atomic_write_path(path, _write)
    return path


def load_checkpoint(path: str, return_numpy: bool = False) -> dict:
    """Load a checkpoint dict as paddle.load would, through the allow-list unpickler
    (io/safeload.py), turning every failure into a CheckpointError (an UnsafeFileError
    for a pickle that asks for code).

    ``return_numpy=True`` gives numpy arrays instead of tensors (paddle.load's flag).
    """
    if not path or not os.path.exists(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist; check the path")
    reason = not_weights_reason(path)
    if reason is not None:
        raise CheckpointError(reason)
    try:
        obj = load_paddle_file(path, return_numpy=return_numpy)
    except UnsafeFileError:
        raise
    except Exception as exc:  # paddle raises EOFError, ValueError, UnpicklingError...
        raise CheckpointError(f"checkpoint {path!r} is truncated or corrupt and cannot be "
                              f"read ({type(exc).__name__}: {exc}); use another checkpoint "
                              "or re-create it") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path!r} holds a {type(obj).__name__}, not a dict "
                              "of named entries (model, betas, ...); is it a ppddpm or "
                              "original-reproduction file?")
    return obj
