"""Where the FID Inception weights come from, and deterministic random weights for tests.

Numpy only (no Paddle), so ``tools/make_inception_fixture.py`` can load this file under
PyTorch and draw exactly the weights the Paddle tests draw.
"""
from __future__ import annotations

import os
import zlib
from typing import Dict, Iterable, Optional, Tuple

import numpy as np

from ...errors import PPDDPMError

ENV_VAR = "PPDDPM_INCEPTION_WEIGHTS"
WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
               + WEIGHTS_FILE)


class InceptionWeightsError(PPDDPMError):
    """No usable FID Inception weights file."""


def how_to_get_weights() -> str:
    return (f"download pytorch-fid's FID Inception weights {WEIGHTS_FILE} (about 95 MB) from "
            f"{WEIGHTS_URL} , put it e.g. in ~/.cache/ppddpm/ and pass --inception_weights "
            f"~/.cache/ppddpm/{WEIGHTS_FILE} or set {ENV_VAR} to that path. ppddpm never "
            "downloads it by itself.")


def resolve_weights_path(path: Optional[str]) -> str:
    """The weights file to use: ``path`` (the flag), else $PPDDPM_INCEPTION_WEIGHTS."""
    path = path or os.environ.get(ENV_VAR)
    if not path:
        raise InceptionWeightsError("FID/IS need the Inception weights and none were given: "
                                    + how_to_get_weights())
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        raise InceptionWeightsError(f"Inception weights file {path} does not exist: "
                                    + how_to_get_weights())
    return path


def _random_tensor(key: str, shape: Tuple[int, ...], seed: int) -> np.ndarray:
    """He-normal convs, mild BatchNorm statistics: activations neither vanish nor explode
    through the 94 conv layers, so parity tests see well-scaled numbers.

    The legacy RandomState is used on purpose: NumPy guarantees its streams never change
    (NEP 19), so committed fixtures stay valid under any NumPy version."""
    rng = np.random.RandomState([seed, zlib.crc32(key.encode())])
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "num_batches_tracked":
        return np.zeros(shape, np.int64)
    if key.startswith("fc."):
        scale = 1.0 / np.sqrt(shape[-1]) if leaf == "weight" else 0.1
        return (rng.standard_normal(shape) * scale).astype(np.float32)
    if leaf == "weight" and len(shape) == 4:          # conv [out, in, kh, kw]
        fan_in = shape[1] * shape[2] * shape[3]
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    if leaf == "weight":                              # BatchNorm gamma
        return rng.uniform(0.8, 1.2, shape).astype(np.float32)
    if leaf in ("bias", "running_mean"):
        return (rng.standard_normal(shape) * 0.1).astype(np.float32)
    if leaf == "running_var":
        return rng.uniform(0.5, 1.5, shape).astype(np.float32)
    raise ValueError(f"no random rule for {key!r}")


def random_torch_state(keys_and_shapes: Iterable[Tuple[str, Tuple[int, ...]]],
                       seed: int) -> Dict[str, np.ndarray]:
    """Random weights in pytorch-fid's state-dict layout; each tensor depends only on
    (seed, its name), not on the order of the keys."""
    return {k: _random_tensor(k, tuple(s), seed) for k, s in keys_and_shapes}
