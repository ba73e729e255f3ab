"""Resumable, distributed work over n items in batches: each batch's result is written at
once to ``folder/{start}-{stop}.npy`` (atomically), a rerun computes only the missing ranges,
and under paddle.distributed the missing batches are dealt round-robin to the ranks. Used by
the FID eval's and denoise's sample generation and by the bits/dim evaluation.
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
from ..samplers import batched


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


def finished_images(folder: str, n: int) -> int:
    """How many of the n items a ``.partial`` folder already holds (0 when there is none)."""
    if not os.path.isdir(folder):
        return 0
    return n - sum(b - a for a, b in missing_ranges(chunk_files(folder), n, n))


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


def sampling_meta(pretrained_path: str, sampler_desc: str, s, shape, classes=None,
                  classifier=None) -> dict:
    """The settings that make samples of a ``.partial`` folder the same images: the weights
    file, the sampler and ``s`` (a SampleConfig), the shape, the classes and the guiding
    classifier."""
    meta = {"pretrained_path": os.path.abspath(pretrained_path),
            "pretrained_bytes": os.path.getsize(pretrained_path), "sampler": sampler_desc,
            "respacing": s.respacing, "skip": s.skip if s.sampler == "ddim" else None,
            "clip_denoised": s.clip_denoised, "seed": s.seed, "shape": list(shape)}
    if classes is not None:   # (unconditional runs keep their old meta, so their files stay valid)
        meta.update(classes=classes, guidance_scale=s.guidance_scale)
    if s.spacing is not None:   # (absent otherwise, so earlier finished evals stay valid)
        meta["spacing"] = s.spacing
    if classifier is not None:   # (absent otherwise, likewise)
        meta.update(classifier_path=os.path.abspath(s.classifier_path),
                    classifier_bytes=os.path.getsize(s.classifier_path),
                    classifier_scale=classifier.scale)
    return meta


def generate_resumable(model, sampler, n: int, shape, batch: int, seed: int, folder: str,
                       meta: dict, progress: bool = True, labels=None,
                       guidance_scale: float = 0.0, classifier=None, desc: str = "images",
                       step_progress: bool = False,
                       on_batch: Optional[Callable[[int, np.ndarray], None]] = None
                       ) -> Optional[np.ndarray]:
    """All n images as uint8 NHWC on rank 0 (None on the other ranks), resuming from the
    chunks already in ``folder``; image i of a conditional model has class ``labels[i]`` (the
    class ``classifier`` guidance pulls it towards, when given).
    ``step_progress``: a bar over each batch's sampling steps; ``on_batch(start, images)``
    runs on each new batch once it is drawn (e.g. to write its PNGs at once)."""
    def compute(a: int, b: int) -> np.ndarray:
        guide = {} if labels is None else dict(labels=labels[a:b], guidance_scale=guidance_scale,
                                               classifier=classifier)
        images = batched.generate(model, sampler, b - a, shape, b - a, seed=seed,
                                  index_offset=a, progress=step_progress, **guide)
        if on_batch is not None:
            on_batch(a, images)
        return images
    return run_resumable(folder, meta, n, batch, compute, desc, progress)
