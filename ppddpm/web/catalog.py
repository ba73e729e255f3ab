"""The weights files under ``--models DIR`` that the page may offer, each described by the
config stored in it (name, data set, resolution, classes, parameter count).

Files are read with ppddpm's own readers only (``convert.pretrained.read_weight_file``:
safetensors, or the allow-list unpickler), so no code in a file ever runs. A job names its
model by the name this listing gave it; ``Catalog.resolve`` accepts exactly those names, so
no path typed into a request (``../x``, an absolute path, a symlink out of DIR) is ever
opened.
"""
from __future__ import annotations

import os
import threading
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from ..config.names import CLASSIFIER_ARCHS
from ..convert.pretrained import read_weight_file, resolve_weight_file
from ..errors import PPDDPMError
from ..samplers import image_shape

# the names load_pretrained reads (convert/pretrained.py)
WEIGHT_SUFFIXES = (".pdparam", ".pdparams", ".safetensors")


class ModelRefused(PPDDPMError):
    """A request named a file that is not one of the listed weights files."""


class ModelEntry(NamedTuple):
    name: str                     # path relative to DIR, with "/" (what the page sends back)
    path: str                     # the real absolute path (never sent to the page)
    arch: str
    dataset: str
    shape: Tuple[int, int, int]   # C, H, W of one image
    num_classes: Optional[int]
    class_names: Optional[List[str]]
    params: int
    timesteps: int                # T of the diffusion the file was trained with
    problem: Optional[str]        # why it cannot be sampled here, or None
    config: object = None         # the file's Config (None when unreadable)
    betas: Optional[np.ndarray] = None

    def public(self) -> dict:
        """What the page shows of the file."""
        return {"name": self.name, "arch": self.arch, "dataset": self.dataset,
                "channels": self.shape[0], "resolution": self.shape[1],
                "num_classes": self.num_classes, "class_names": self.class_names,
                "params": self.params, "timesteps": self.timesteps, "problem": self.problem}


def inside(root: str, path: str) -> bool:
    """Whether the real path of ``path`` lies under the real folder ``root``."""
    real = os.path.realpath(path)
    return os.path.commonpath([root, real]) == root and real != root


def describe(path: str, name: str) -> ModelEntry:
    """Read the file's stored config (and count its weights); an unreadable file gets an
    entry whose ``problem`` says why."""
    try:
        wf = resolve_weight_file(read_weight_file(path), path)
    except (PPDDPMError, OSError, ValueError) as exc:
        return ModelEntry(name, path, "?", "?", (0, 0, 0), None, None, 0, 0,
                          f"not readable: {exc}")
    cfg = wf.config
    params = sum(int(np.prod(getattr(v, "shape", ()))) for v in wf.state.values())
    shape = tuple(image_shape(cfg.model))
    problem = None
    if cfg.model.arch in CLASSIFIER_ARCHS:
        problem = "a noisy classifier, not a diffusion model"
    elif list(shape) == [2, 1, 1]:
        problem = "a 2-D toy model: sample it with run_toy.py"
    return ModelEntry(name, path, cfg.model.arch, cfg.data.dataset, shape,
                      cfg.model.num_classes, cfg.data.class_names, params,
                      cfg.diffusion.num_diffusion_steps, problem, cfg, wf.betas)


class Catalog:
    """The listing of DIR, re-read on each call; a file is read again only when its size or
    modification time changed."""

    def __init__(self, root: str):
        self.root = os.path.realpath(root)
        self._seen: Dict[str, Tuple[Tuple[int, int], ModelEntry]] = {}
        self._lock = threading.Lock()

    def candidates(self) -> List[Tuple[str, str]]:
        """(name, path) of every weights file under DIR, sorted by name; links that lead out
        of DIR are left out."""
        out = []
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for f in files:
                path = os.path.join(folder, f)
                if f.lower().endswith(WEIGHT_SUFFIXES) and inside(self.root, path):
                    out.append((os.path.relpath(path, self.root).replace(os.sep, "/"), path))
        return sorted(out)

    def entries(self) -> List[ModelEntry]:
        with self._lock:
            out, seen = [], {}
            for name, path in self.candidates():
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                stamp = (st.st_size, st.st_mtime_ns)
                old = self._seen.get(path)
                entry = old[1] if old and old[0] == stamp else describe(path, name)
                seen[path] = (stamp, entry)
                out.append(entry)
            self._seen = seen
            return out

    def resolve(self, name) -> ModelEntry:
        """The entry the page listed as ``name``; ModelRefused for anything else."""
        if isinstance(name, str):
            for entry in self.entries():
                if entry.name == name:
                    if entry.problem:
                        raise ModelRefused(f"{name} cannot be sampled: {entry.problem}")
                    return entry
        raise ModelRefused(f"{str(name)[:200]!r} is not one of the weights files under "
                           f"--models {self.root}; choose a listed model")
