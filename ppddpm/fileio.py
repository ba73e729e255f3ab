"""Crash-safe file writes: temp file in the target's folder, fsync, os.replace.

A reader (or a process killed mid-write) sees either the old file or the new
one, never a truncated mix: os.replace is atomic on POSIX when source and
target are on the same file system, which a temp file in the same folder is.
"""
from __future__ import annotations

import os
import tempfile
from typing import Callable

TMP_SUFFIX = ".tmp"


def temp_path_for(path: str) -> str:
    """Create (empty) and return a unique hidden temp file beside ``path``."""
    folder = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=TMP_SUFFIX,
                               dir=folder)
    os.close(fd)
    # mkstemp creates 0600; give the final file the usual permissions (0666 minus umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return tmp


def fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: str) -> None:
    """Make the rename itself durable (best effort: not every OS allows it)."""
    try:
        fd = os.open(folder or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def commit_temp(tmp: str, path: str) -> None:
    """fsync ``tmp``, atomically move it onto ``path``, fsync the folder."""
    fsync_file(tmp)
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(os.path.abspath(path)))


def atomic_write_path(path: str, write_to: Callable[[str], None]) -> None:
    """Call ``write_to(tmp_path)``, then commit; the temp file is removed on error."""
    tmp = temp_path_for(path)
    try:
        write_to(tmp)
        commit_temp(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def atomic_write(path: str, write_fn: Callable) -> None:
    """Like :func:`atomic_write_path` but ``write_fn`` receives an open binary file."""
    def _write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            write_fn(fh)
            fh.flush()
    atomic_write_path(path, _write)


def atomic_write_dir(folder: str, write_to: Callable[[str], None],
                     is_complete: Callable[[str], bool]) -> None:
    """Build a folder under a hidden temporary name beside ``folder``, then rename it into
    place (atomic). If another process put a complete ``folder`` there first, keep theirs.
    The temporary folder is removed in every case."""
    import shutil
    parent = os.path.dirname(os.path.abspath(folder))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".export-", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)   # mkdtemp's 0700 -> the usual permissions
    try:
        write_to(tmp)
        try:
            os.replace(tmp, folder)
        except OSError:
            if not is_complete(folder):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
