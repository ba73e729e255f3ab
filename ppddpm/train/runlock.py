"""One training run per checkpoint folder.

:class:`RunLock` is a file ``{ckpt_dir}/.ppddpm-train.lock`` holding the pid, host and
start time of the run that owns the folder, locked with ``flock`` while that run lives.
The kernel drops an ``flock`` when its process dies, even by SIGKILL, so a lock file
left by a dead run is taken over (with a note naming the dead pid), while a live
run's lock refuses a second trainer with an error naming the pid. Where the file
system has no ``flock``, the pid is checked instead (on the same host).

:func:`claim_run_folder` takes the lock, then puts the folder in order for the run:
it removes temp files of killed writes (``fileio.stale_temp_files``) and refuses
``--mode train`` into a folder that already holds training checkpoints of the same
prefix unless ``--overwrite True`` (which removes those checkpoints first).
"""
from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from typing import Callable, List, Optional, Tuple

from ..errors import PPDDPMError
from .checkpoint import list_checkpoints, remove_stale_temps

LOCK_NAME = ".ppddpm-train.lock"


class RunFolderBusy(PPDDPMError):
    """Another live run owns the checkpoint folder, or it holds another run's files."""


def _host() -> str:
    return socket.gethostname()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _parse(text: str) -> Tuple[Optional[int], str, str]:
    """(pid, host, started) from a lock file's 'key value' lines."""
    fields = dict(line.split(" ", 1) for line in text.splitlines() if " " in line)
    try:
        pid = int(fields.get("pid", ""))
    except ValueError:
        pid = None
    return pid, fields.get("host", "?"), fields.get("started", "?")


class RunLock:
    def __init__(self, folder: str):
        self.folder = folder
        self.path = os.path.join(folder, LOCK_NAME)
        self.fd: Optional[int] = None

    def acquire(self) -> Optional[str]:
        """Take the lock; returns a note when a dead run's lock was taken over.
        Raises RunFolderBusy when a live run holds it."""
        os.makedirs(self.folder, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                if not self._flock(fd):
                    raise self._busy(self._read(fd))
                # Held; but a releasing run may have unlinked this file meanwhile.
                try:
                    same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    break
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
        previous = self._read(fd)
        self.fd = fd
        started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}\nhost {_host()}\nstarted {started}\n".encode(), 0)
        pid, host, when = _parse(previous)
        if pid is None:
            return None
        return (f"note: took over the lock of {self.folder!r} left by pid {pid} on {host} "
                f"(started {when}), which is no longer running")

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.remove(self.path)  # while still holding the lock: see acquire's inode check
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> "RunLock":
        if self.fd is None:
            self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    # -- helpers -------------------------------------------------------------------
    def _flock(self, fd: int) -> bool:
        """True when this process now holds the lock."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            # No flock on this file system: trust a live pid on this host.
            pid, host, _ = _parse(self._read(fd))
            return not (pid is not None and host == _host() and pid != os.getpid()
                        and _pid_alive(pid))

    @staticmethod
    def _read(fd: int) -> str:
        try:
            return os.pread(fd, 4096, 0).decode("utf-8", "replace")
        except OSError:
            return ""

    def _busy(self, text: str) -> RunFolderBusy:
        pid, host, when = _parse(text)
        who = f"pid {pid} on {host}, started {when}" if pid is not None else "another process"
        return RunFolderBusy(f"{self.folder!r} is in use by another training run ({who}); "
                             "wait for it to end or stop it, or train into another --ckpt_dir")


def claim_run_folder(ckpt_dir: str, prefix: str, resume: bool, overwrite: bool,
                     say: Callable[[str], None]) -> RunLock:
    """Lock ``ckpt_dir`` for this run and tidy it (see the module docstring). The caller
    releases the returned lock when the run ends (it is a context manager)."""
    lock = RunLock(ckpt_dir)
    note = lock.acquire()
    try:
        if note:
            say(note)
        removed = remove_stale_temps(ckpt_dir, prefix)
        if removed:
            say(f"note: removed {len(removed)} temporary file(s) of interrupted writes in "
                f"{ckpt_dir!r}")
        found = list_checkpoints(ckpt_dir, prefix)
        if found and not resume:
            if not overwrite:
                raise RunFolderBusy(
                    f"{ckpt_dir!r} already holds {len(found)} training checkpoint(s) of "
                    f"{prefix!r} (the latest: iteration {found[-1][0]}); continue that run "
                    "with --mode resume, train into a new --ckpt_dir, or pass --overwrite "
                    "True to delete them and start again")
            removed: List[str] = []
            for _, path in found:
                os.remove(path)
                removed.append(os.path.basename(path))
            say(f"note: --overwrite: deleted the earlier run's {len(removed)} training "
                f"checkpoint(s) in {ckpt_dir!r}")
    except BaseException:
        lock.release()
        raise
    return lock
