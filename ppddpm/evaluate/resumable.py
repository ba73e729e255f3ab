"""Resumable, distributed work over n items in batches: each batch's result is written at
once to ``folder/{start}-{stop}.npy`` (atomically), a rerun computes only the missing ranges,
and under paddle.distributed the missing batches are dealt round-robin to the ranks. Used by
the FID eval's sample generation and by the bits/dim evaluation.
"""
from __future__ import annotations

import json
import os
import re
from typing import Callable, List, Optional, Tuple

import numpy as np

from ..config import ConfigError
from ..errors import CheckpointError
from ..io.files import atomic_write
from ..runtime import dist
from ..runtime.progress import progress as progress_display


def chunk_files(folder: str) -> List[Tuple[int, int, str]]:
    out = []
    for name in os.listdir(folder):
        m = re.fullmatch(r"(\d+)-(\d+)\.npy", name)
        if m:
            out.append((int(m.group(1)), int(m.group(2)), os.path.join(folder, name)))
    return sorted(out)


def missing_ranges(chunks, n: int, batch: int) -> List[Tuple[int, int]]:
    """Index ranges in [0, n) no chunk covers, cut into pieces of at most ``batch``."""
    covered = np.zeros(n, dtype=bool)
    for start, stop, _ in chunks:
        covered[start:min(stop, n)] = True
    out, i = [], 0
    while i < n:
        if covered[i]:
            i += 1
            continue
        j = i
        while j < n and not covered[j] and j - i < batch:
            j += 1
        out.append((i, j))
        i = j
    return out


def open_partial(folder: str, meta: dict, create: bool) -> None:
    """Create the partial folder with its settings (``create``: rank 0, before a barrier),
    or check that an existing one holds samples of these settings (every rank, after it,
    so that all ranks stop together)."""
    meta_path = os.path.join(folder, "meta.json")
    if create:
        if not os.path.isfile(meta_path):
            os.makedirs(folder, exist_ok=True)
            text = json.dumps(meta, indent=1, sort_keys=True)
            atomic_write(meta_path, lambda fh: fh.write(text.encode()))
        return
    with open(meta_path) as fh:
        old = json.load(fh)
    diffs = [f"{k}: {old.get(k)!r} -> {v!r}" for k, v in meta.items() if old.get(k) != v]
    if diffs:
        raise ConfigError(f"{folder} holds samples of other settings ({'; '.join(diffs)}); "
                          "delete it, or use another --sample_postfix, to start afresh")


def run_resumable(folder: str, meta: dict, n: int, batch: int,
                  compute: Callable[[int, int], np.ndarray], desc: str,
                  progress: bool = True) -> Optional[np.ndarray]:
    """The [n, ...] results of ``compute(start, stop)`` on rank 0 (None on the other ranks),
    resuming from the chunks already in ``folder`` (which must hold these ``meta`` settings)."""
    size, rank = dist.world()
    if rank == 0:
        open_partial(folder, meta, create=True)
    dist.barrier()
    open_partial(folder, meta, create=False)
    todo = missing_ranges(chunk_files(folder), n, batch)
    bar = progress_display(total=n, initial=n - sum(b - a for a, b in todo), desc=desc,
                           unit="img", enabled=progress and rank == 0)
    for k, (a, b) in enumerate(todo):
        if k % size != rank:
            continue
        result = compute(a, b)
        atomic_write(os.path.join(folder, f"{a:07d}-{b:07d}.npy"), lambda fh: np.save(fh, result))
        bar.update((b - a) * size)
    bar.close()
    dist.barrier()
    if rank != 0:
        return None
    missing = missing_ranges(chunk_files(folder), n, n)
    if missing:
        raise CheckpointError(f"{folder}: items {missing[0]} have no result after the run")
    out = None
    for start, stop, path in chunk_files(folder):
        part = np.load(path)
        if out is None:
            out = np.empty((n,) + part.shape[1:], dtype=part.dtype)
        lo, hi = start, min(stop, n)
        if lo < hi:
            out[lo:hi] = part[:hi - lo]
    return out
