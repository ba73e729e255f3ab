""".safetensors files through the ``safetensors`` package (numpy only, no torch).

The package validates the header (JSON, dtypes, shapes whose byte size overflows, data
offsets that overlap, leave gaps or run past the end) before any tensor is built; every
failure becomes a one-line CheckpointError naming the file. BF16 has no numpy dtype:
it is read as the high half of a float32 and returned as float32.

ppddpm inference files in this format (``write_inference_safetensors``) hold the
network's weights as tensors and the rest of the inference-file dict as JSON strings in
the header's ``__metadata__``: ``config``, ``betas`` (float64 values, exact through
JSON), ``options`` and ``version``, with ``format`` = ``ppddpm-inference``.
"""
from __future__ import annotations

import json
import os
from typing import Dict, Mapping, Optional, Tuple

import numpy as np
import safetensors
import safetensors.numpy

from ..errors import CheckpointError
from .files import atomic_write_path

__all__ = ["read_safetensors", "write_safetensors", "looks_like_safetensors",
           "read_inference_safetensors", "write_inference_safetensors", "DTYPES", "FORMAT"]

DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4",
          "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?", "U16": "<u2", "U32": "<u4",
          "U64": "<u8"}
FORMAT = "ppddpm-inference"
EXTENSION = ".safetensors"


def _bf16_to_f32(raw: np.ndarray) -> np.ndarray:
    return (raw.astype(np.uint32) << 16).view(np.float32)


def looks_like_safetensors(path: str) -> bool:
    """By name (.safetensors) or by content: an 8-byte header length then a JSON object.
    A pickle (what .pdparam files are) starts with 0x80 instead."""
    if str(path).lower().endswith(EXTENSION):
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(9)
    except OSError:
        return False
    return len(head) == 9 and head[8:9] == b"{" and head[0] != 0x80


def read_safetensors(path: str) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """Return ({name: array}, metadata), names sorted. BF16 tensors come back as float32.

    Raises CheckpointError naming the file for a truncated or malformed file.
    """
    if not os.path.isfile(path):
        raise CheckpointError(f"cannot read {path}: no such file")
    tensors: Dict[str, np.ndarray] = {}
    try:
        with safetensors.safe_open(path, framework="numpy") as f:   # validates the whole header
            metadata = f.metadata() or {}
            bf16 = []
            for name in f.keys():
                dtype = f.get_slice(name).get_dtype()
                if dtype not in DTYPES:
                    raise CheckpointError(f"{path}: tensor {name!r} has dtype {dtype}, which "
                                          f"ppddpm does not read (readable: {sorted(DTYPES)})")
                if dtype == "BF16":          # no numpy dtype: read its raw bytes below
                    bf16.append(name)
                else:
                    tensors[name] = f.get_tensor(name)
        if bf16:
            with open(path, "rb") as fh:
                raw = dict(safetensors.deserialize(fh.read()))
            for name in bf16:
                tensors[name] = _bf16_to_f32(np.frombuffer(raw[name]["data"], "<u2")
                                             .reshape(raw[name]["shape"]))
    except CheckpointError:
        raise
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
    except Exception as exc:   # SafetensorError, and whatever a future version raises
        why = " ".join(str(exc).split())[:200]
        raise CheckpointError(f"{path} is not a valid safetensors file: {why} "
                              "(truncated or damaged? download it again)") from None
    return {k: tensors[k] for k in sorted(tensors)}, {str(k): str(v) for k, v in metadata.items()}


def write_safetensors(path: str, tensors: Mapping[str, np.ndarray],
                      metadata: Optional[Mapping[str, str]] = None,
                      dtype: Optional[str] = None) -> None:
    """Write ``tensors`` (numpy arrays) to ``path`` atomically with the package's writer.
    ``dtype`` ("F16", "F32", "F64") casts every floating tensor on the way; otherwise each
    keeps its numpy dtype."""
    if dtype is not None and dtype not in ("F16", "F32", "F64"):
        raise ValueError(f"dtype {dtype!r}: write_safetensors casts to F16, F32 or F64")
    arrays = {}
    for name, value in tensors.items():
        arr = np.asarray(value)
        if dtype and arr.dtype.kind == "f":
            arr = arr.astype(DTYPES[dtype])
        arrays[str(name)] = arr if arr.flags.c_contiguous else arr.copy(order="C")  # keeps 0-d
    meta = {str(k): str(v) for k, v in (metadata or {}).items()} or None
    atomic_write_path(path, lambda tmp: safetensors.numpy.save_file(arrays, tmp, metadata=meta))


# ---- ppddpm inference files ------------------------------------------------------------

def _json_value(x):
    """JSON fallback for option values: numpy scalars/arrays as Python values, else text."""
    if isinstance(x, (np.generic, np.ndarray)):
        return x.tolist()
    return str(x)


def write_inference_safetensors(path: str, obj: Mapping) -> str:
    """Write an inference-file dict {"model", "betas", "options", "config", "version"}."""
    betas = np.asarray(obj["betas"], dtype=np.float64)
    meta = {"format": FORMAT,
            "config": json.dumps(obj["config"], sort_keys=True),
            "betas": json.dumps([float(b) for b in betas]),
            "options": json.dumps(dict(obj.get("options") or {}), default=_json_value,
                                  sort_keys=True),
            "version": str(obj.get("version", ""))}
    write_safetensors(path, {k: np.asarray(v) for k, v in obj["model"].items()}, meta)
    return path


def read_inference_safetensors(path: str) -> dict:
    """Read a ppddpm .safetensors inference file back into the inference-file dict."""
    tensors, meta = read_safetensors(path)
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is a safetensors file but not a ppddpm inference file (its metadata has "
            f"no format={FORMAT!r}); a diffusers UNet folder converts with "
            "python -m ppddpm.convert --from diffusers --src FOLDER --out FILE.safetensors")
    parsed = {}
    for key in ("config", "betas", "options"):
        try:
            parsed[key] = json.loads(meta[key])
        except (KeyError, ValueError):
            raise CheckpointError(f"{path}: the metadata entry {key!r} is missing or not JSON; "
                                  "re-create the file with python -m ppddpm.convert") from None
    try:
        betas = np.asarray(parsed["betas"], dtype=np.float64)
    except (TypeError, ValueError):
        betas = None
    if not isinstance(parsed["config"], dict) or betas is None or betas.ndim != 1:
        raise CheckpointError(f"{path}: the metadata's config must be a JSON object and its "
                              "betas a list of numbers")
    return {"model": tensors, "betas": betas, "options": parsed["options"],
            "config": parsed["config"], "version": meta.get("version", "")}
