"""Read and write .safetensors files with numpy alone (no torch, no safetensors package).

Format: 8-byte little-endian unsigned header length N, then N bytes of JSON
{name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {...}},
then the raw little-endian tensor bytes; offsets are relative to the end of the header.
BF16 has no numpy dtype: it is read as the high half of a float32 and returned as float32.
"""
from __future__ import annotations

import json
import os
import struct
from typing import Dict, Mapping, Optional, Tuple

import numpy as np

from ..errors import CheckpointError

__all__ = ["read_safetensors", "write_safetensors", "DTYPES"]

DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4",
          "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}
_NP_TO_ST = {np.dtype("float64"): "F64", np.dtype("float32"): "F32", np.dtype("float16"): "F16",
             np.dtype("int64"): "I64", np.dtype("int32"): "I32", np.dtype("int16"): "I16",
             np.dtype("int8"): "I8", np.dtype("uint8"): "U8", np.dtype("bool"): "BOOL"}
MAX_HEADER = 100 * 1024 * 1024


def _bf16_to_f32(raw: np.ndarray) -> np.ndarray:
    return (raw.astype(np.uint32) << 16).view(np.float32)


def _f32_to_bf16(x: np.ndarray) -> np.ndarray:
    """Round float32 to bfloat16 bits, nearest-even (NaN kept quiet)."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    nan = np.isnan(x)
    return np.where(nan, (bits >> 16) | 0x40, rounded).astype(np.uint16)


def read_safetensors(path: str) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """Return ({name: array}, metadata) in file order. BF16 tensors come back as float32.

    Raises CheckpointError naming the file for a truncated or malformed file.
    """
    def bad(why: str) -> CheckpointError:
        return CheckpointError(f"{path} is not a valid safetensors file: {why}")

    try:
        size = os.path.getsize(path)
        fh = open(path, "rb")
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
    with fh:
        head = fh.read(8)
        if len(head) < 8:
            raise bad(f"only {size} bytes, shorter than the 8-byte header length")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER or 8 + n > size:
            raise bad(f"header length {n} does not fit in the file's {size} bytes")
        try:
            header = json.loads(fh.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise bad(f"header is not JSON ({exc})") from None
        if not isinstance(header, dict):
            raise bad("header is not a JSON object")
        metadata = header.pop("__metadata__", None) or {}
        data_len = size - 8 - n
        tensors: Dict[str, np.ndarray] = {}
        for name, info in sorted(header.items(), key=lambda kv: _begin(kv[1])):
            try:
                dtype, shape = info["dtype"], [int(s) for s in info["shape"]]
                begin, end = (int(o) for o in info["data_offsets"])
            except (KeyError, TypeError, ValueError):
                raise bad(f"entry {name!r} lacks dtype/shape/data_offsets: {info!r}") from None
            if dtype not in DTYPES:
                raise bad(f"tensor {name!r} has dtype {dtype!r}; readable: {sorted(DTYPES)}")
            np_dtype = np.dtype(DTYPES[dtype])
            want = int(np.prod(shape, dtype=np.int64)) * np_dtype.itemsize
            if not 0 <= begin <= end <= data_len or end - begin != want:
                raise bad(f"tensor {name!r} ({dtype} {shape}) has data_offsets [{begin}, {end}] "
                          f"but needs {want} bytes within the {data_len} data bytes "
                          "(file truncated or corrupt?)")
            fh.seek(8 + n + begin)
            arr = np.frombuffer(fh.read(want), dtype=np_dtype).reshape(shape)
            tensors[name] = _bf16_to_f32(arr) if dtype == "BF16" else arr.copy()
    ordered = {k: tensors[k] for k in header}   # header order, as written
    return ordered, {str(k): str(v) for k, v in metadata.items()}


def _begin(info) -> int:
    try:
        return int(info["data_offsets"][0])
    except Exception:
        return -1


def write_safetensors(path: str, tensors: Mapping[str, np.ndarray],
                      metadata: Optional[Mapping[str, str]] = None,
                      dtype: Optional[str] = None) -> None:
    """Write ``tensors`` (numpy arrays) to ``path``. ``dtype`` ("F16", "BF16", ...) casts
    every floating tensor on the way; otherwise each keeps its numpy dtype."""
    header, chunks, offset = {}, [], 0
    for name, value in tensors.items():
        arr = np.asarray(value)
        st = dtype if (dtype and arr.dtype.kind == "f") else _NP_TO_ST.get(arr.dtype)
        if st is None:
            raise ValueError(f"tensor {name!r}: dtype {arr.dtype} has no safetensors code")
        raw = _f32_to_bf16(arr) if st == "BF16" else arr.astype(DTYPES[st])
        data = np.ascontiguousarray(raw).tobytes()
        header[name] = {"dtype": st, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)   # pad so that the data starts 8-byte aligned
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(blob)))
        fh.write(blob)
        for data in chunks:
            fh.write(data)
