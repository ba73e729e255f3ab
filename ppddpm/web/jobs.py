"""Jobs and their queue: one worker thread runs one job at a time (a second job never runs
beside the first on a CPU machine); every waiting job knows its place.

A job kind (``kinds.JOB_KINDS``) turns the page's form into a plan before the job is queued
(so a bad value is refused at once) and runs the plan in the worker, reporting through the
``Job``: ``step``, ``frames``, ``stopped``; ``files`` are the downloads it wrote.
"""
from __future__ import annotations

import collections
import os
import secrets
import sys
import threading
import time
import traceback
from typing import Callable, Dict, List, Optional

from ..errors import PPDDPMError

KEEP_JOBS = 50   # finished jobs remembered (their pages and downloads); older ones are dropped


class Job:
    """One request: its state, progress, the newest frames and the files it wrote. Written by
    the worker thread, read by the server; ``revision`` grows with every change."""

    def __init__(self, kind: str, plan, folder: str):
        self.id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
        self.kind, self.plan = kind, plan
        self.folder = os.path.join(folder, self.id)   # its outputs, inside --out
        self.state = "queued"        # queued | running | done | failed | stopped
        self.message = ""
        self.steps_done, self.steps_total = 0, 0
        self.first_step: Optional[float] = None
        self.frames: Dict[str, bytes] = {}   # name -> PNG of the newest frame
        self.frame_count = 0
        self.files: Dict[str, str] = {}      # download name -> path
        self.stop_event = threading.Event()
        self.revision = 0
        self._lock = threading.Lock()

    # -- written by the worker ------------------------------------------------------
    def _touch(self, **fields) -> None:
        with self._lock:
            for k, v in fields.items():
                setattr(self, k, v)
            self.revision += 1

    def note(self, message: str) -> None:
        self._touch(message=message)

    def step(self, done: int, total: int) -> None:
        if done == 1:   # the time left is measured from here: loading and warm-up excluded
            self.first_step = time.monotonic()
        self._touch(steps_done=done, steps_total=total)

    def show_frames(self, frames: Dict[str, bytes]) -> None:
        self._touch(frames=dict(frames), frame_count=self.frame_count + 1)

    @property
    def stopped(self) -> bool:
        return self.stop_event.is_set()

    # -- read by the server ---------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "stopped")

    def seconds_left(self) -> Optional[float]:
        if self.state != "running" or self.first_step is None or self.steps_done < 2:
            return None
        spent = time.monotonic() - self.first_step
        return spent / (self.steps_done - 1) * (self.steps_total - self.steps_done)

    def snapshot(self, position: int) -> dict:
        with self._lock:
            return {"id": self.id, "kind": self.kind, "state": self.state,
                    "message": self.message, "position": position,
                    "steps_done": self.steps_done, "steps_total": self.steps_total,
                    "seconds_left": self.seconds_left(), "frame_count": self.frame_count,
                    "files": sorted(self.files), "revision": self.revision}


class JobQueue:
    """First come, first served, one at a time. ``run(job)`` is the job kind's runner."""

    def __init__(self, run: Callable[[Job], None]):
        self._run = run
        self._waiting: collections.deque = collections.deque()
        self._jobs: "collections.OrderedDict[str, Job]" = collections.OrderedDict()
        self._running: Optional[Job] = None
        self._cv = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(target=self._loop, name="ppddpm-web-worker", daemon=True)
        self._worker.start()

    def submit(self, job: Job) -> Job:
        with self._cv:
            self._jobs[job.id] = job
            self._waiting.append(job)
            self._forget_old()
            self._cv.notify()
        return job

    def get(self, job_id: str) -> Optional[Job]:
        with self._cv:
            return self._jobs.get(job_id)

    def position(self, job: Job) -> int:
        """0 while it runs (or is over), k when k - 1 jobs are ahead of it (the running one
        counts)."""
        with self._cv:
            if job in self._waiting:
                return list(self._waiting).index(job) + 1 + (self._running is not None)
            return 0

    def stop(self, job: Job) -> None:
        """A waiting job leaves the queue; a running one stops at its next step."""
        with self._cv:
            job.stop_event.set()
            if job in self._waiting:
                self._waiting.remove(job)
                job._touch(state="stopped", message="stopped before it started")

    def close(self) -> None:
        with self._cv:
            self._closed = True
            for job in list(self._waiting) + ([self._running] if self._running else []):
                job.stop_event.set()
            self._cv.notify()

    def active(self) -> List[Job]:
        with self._cv:
            return ([self._running] if self._running else []) + list(self._waiting)

    def _forget_old(self) -> None:
        done = [j for j in self._jobs.values() if j.finished]
        for job in done[:max(0, len(done) - KEEP_JOBS)]:
            del self._jobs[job.id]

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._waiting and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                job = self._running = self._waiting.popleft()
                job._touch(state="running", message="starting")
            try:
                self._run(job)
                if job.stopped:
                    job._touch(state="stopped", message=f"stopped after {job.steps_done} of "
                               f"{job.steps_total} steps; nothing was written")
                else:
                    job._touch(state="done", message=job.message)
            except PPDDPMError as exc:   # the user's to fix: the message says how
                job._touch(state="failed", message=str(exc))
            except Exception as exc:  # the server keeps serving; the log keeps the traceback
                traceback.print_exc(file=sys.stderr)
                job._touch(state="failed", message=f"the job failed: {type(exc).__name__}: {exc}")
            finally:
                with self._cv:
                    self._running = None
