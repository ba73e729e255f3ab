"""Crash-safe file writes: temp file in the target's folder, fsync, os.replace.

A reader (or a process killed mid-write) sees either the old file or the new
one, never a truncated mix: os.replace is atomic on POSIX when source and
target are on the same file system, which a temp file in the same folder is.

A write that fails (disk full, quota, permission lost, file-size limit) removes
its temp file, leaves the old file in place and raises :class:`WriteFailed`, a
one-line error naming the path and the reason. Temp files of a process killed
mid-write are found again by :func:`stale_temp_files` (their names are
``.{target name}.{8 random characters}.tmp``).
"""
from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import tempfile
from typing import Callable, List, Optional

from ..errors import PPDDPMError

TMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.[A-Za-z0-9_]{8}" + re.escape(TMP_SUFFIX) + "$")


class WriteFailed(PPDDPMError):
    """A file could not be written; the file that was there before is unchanged."""


def describe_os_error(exc: OSError) -> str:
    """'No space left on device (ENOSPC)': the reason of an OSError in a few words."""
    code = errno.errorcode.get(exc.errno, "") if exc.errno is not None else ""
    reason = exc.strerror or str(exc)
    return f"{reason} ({code})" if code else reason


def write_failed(path: str, exc: OSError) -> WriteFailed:
    return WriteFailed(f"could not write {path}: {describe_os_error(exc)}; the file there "
                       "before (if any) is unchanged. Free space or fix the folder's permissions, "
                       "then run the command again")


def temp_target(name: str) -> Optional[str]:
    """The file name a temp file of :func:`temp_path_for` was meant to become, else None."""
    m = _TEMP_NAME.match(name)
    return m.group("target") if m else None


def stale_temp_files(folder: str, keep: Callable[[str], bool]) -> List[str]:
    """Paths of the temp files in ``folder`` whose target name satisfies ``keep``."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    out = []
    for name in sorted(names):
        target = temp_target(name)
        if target is not None and keep(target) and os.path.isfile(os.path.join(folder, name)):
            out.append(os.path.join(folder, name))
    return out


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
    """Call ``write_to(tmp_path)``, then commit; the temp file is removed on error.

    An OSError with an errno (ENOSPC, EDQUOT, EFBIG, EACCES, EROFS, ...) becomes
    :class:`WriteFailed`."""
    try:
        tmp = temp_path_for(path)
    except OSError as exc:
        if exc.errno is None:
            raise
        raise write_failed(path, exc) from None
    try:
        write_to(tmp)
        commit_temp(tmp, path)
    except BaseException as exc:
        try:
            os.remove(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) and exc.errno is not None:
            raise write_failed(path, exc) from None
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


def file_hash(path: str, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
