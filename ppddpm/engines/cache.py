"""The engines' on-disk cache: where exports live, the key that names them, which files
an export consists of, and pruning. Shared by the Paddle Inference and ONNX Runtime engines
(predictor.py, onnx.py) and the Inception engine (evaluate/metrics/inception_engine.py)."""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
from typing import Sequence

import numpy as np
import paddle

from ..version import __version__

CACHE_ENV = "PPDDPM_ENGINE_CACHE"


def default_cache_dir() -> str:
    return os.environ.get(CACHE_ENV) or os.path.join(
        os.path.expanduser("~"), ".cache", "ppddpm", "engines")


# -- cache key ---------------------------------------------------------------------
def structure_text(model: paddle.nn.Layer) -> str:
    """Everything besides the weights that changes the exported graph: the layers' reprs
    (kernel sizes, strides, GroupNorm eps, ...), their plain attributes (freq_shift,
    num_classes, use_sdpa, ...) and the source code of the network's classes."""
    parts = [repr(model)]
    sources = set()
    for name, layer in model.named_sublayers(include_self=True):
        plain = {k: v for k, v in vars(layer).items() if not k.startswith("_")
                 and k != "training" and isinstance(v, (bool, int, float, str, tuple, type(None)))}
        parts.append(f"{name}:{type(layer).__module__}.{type(layer).__qualname__}:{sorted(plain.items())}")
        if type(layer).__module__.startswith("ppddpm"):
            try:
                sources.add(inspect.getsourcefile(type(layer)))
            except TypeError:
                pass
    for path in sorted(s for s in sources if s):
        with open(path, "rb") as f:
            parts.append(hashlib.sha256(f.read()).hexdigest())
    return "\n".join(parts)


def engine_key(model: paddle.nn.Layer, image_shape: Sequence[int], with_labels: bool,
               device: str, runtime: str = "inference") -> str:
    """Hash of the weights, structure, input shape, device, runtime and versions."""
    h = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        arr = np.ascontiguousarray(value.numpy())
        h.update(f"{name}:{arr.dtype}:{arr.shape}".encode())
        h.update(arr.tobytes())
    h.update(structure_text(model).encode())
    h.update(json.dumps({"shape": [int(s) for s in image_shape], "labels": with_labels,
                         "device": device, "paddle": paddle.__version__,
                         "paddle_commit": getattr(paddle.version, "commit", ""),
                         "ppddpm": __version__, "runtime": runtime}).encode())
    return h.hexdigest()[:32]


MARKER = "ppddpm.engine"   # meta.json "engine": pruning touches only this module's exports


def is_ours(folder: str) -> bool:
    try:
        with open(os.path.join(folder, "meta.json")) as f:
            return json.load(f).get("engine") == MARKER
    except (OSError, ValueError, AttributeError):
        return False


def prune_cache(cache_dir: str, keep: int) -> None:
    """Delete all but the ``keep`` most recently used exports of this module (folder mtime,
    touched on use); other folders in the cache (e.g. the Inception exports) are left alone."""
    entries = [os.path.join(cache_dir, d) for d in os.listdir(cache_dir) if not d.startswith(".")]
    entries = [d for d in entries if os.path.isdir(d) and is_ours(d)]
    entries.sort(key=os.path.getmtime, reverse=True)
    for old in entries[max(keep, 1):]:
        shutil.rmtree(old, ignore_errors=True)


def model_files(folder: str):
    """(graph file, params file) of an export: .json under PIR, .pdmodel under the old IR."""
    for ext in (".json", ".pdmodel"):
        if os.path.exists(os.path.join(folder, "model" + ext)):
            return os.path.join(folder, "model" + ext), os.path.join(folder, "model.pdiparams")
    return None
