"""Read a PyTorch ``.pth`` state dict into numpy arrays, without PyTorch.

Two layouts exist (torch/serialization.py):
  * zip (torch >= 1.6): ``<root>/data.pkl`` is a pickle whose tensors refer to storages by
    persistent id ``('storage', StorageType, key, location, numel)``; the raw little-endian
    bytes of storage ``key`` are the zip member ``<root>/data/<key>``.
  * legacy (torch < 1.6, e.g. pytorch-fid's Inception weights): five pickles in a row
    (magic number, protocol version, system info, the object, the list of storage keys),
    then for each key an int64 element count followed by the storage's raw bytes.
In both, a tensor is ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``.

Security and scope: the unpickler resolves only the handful of globals a state dict needs
(OrderedDict, the tensor/parameter rebuilders, the storage types). Anything else, such as a
whole pickled ``nn.Module``, is refused with a message saying to save ``model.state_dict()``.
``read_pth`` wants a flat state dict; ``read_pth_tree`` also takes the training
checkpoints that nest state dicts in plain lists and dicts (with optimizer states and
counters), as DDIM's ``ckpt.pth`` does.
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from typing import Dict, Tuple

import numpy as np

from ..errors import CheckpointError

# torch storage class name -> numpy dtype ("bfloat16" is widened to float32 below).
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_, "UntypedStorage": np.uint8,
}
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_FIX = ("save only the weights, e.g. torch.save(model.state_dict(), path), and pass that file")


class PthError(CheckpointError):
    """The file is not a readable PyTorch state dict."""


class _StorageType:
    """Stands in for ``torch.FloatStorage`` etc. inside the pickle."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]

    @property
    def itemsize(self) -> int:
        return 2 if self.dtype == "bfloat16" else np.dtype(self.dtype).itemsize


class _Storage:
    """A typed storage whose bytes are filled in on demand (zip) or after the pickle (legacy)."""

    def __init__(self, stype: _StorageType, numel: int):
        self.stype, self.numel, self.raw = stype, int(numel), None

    def array(self) -> np.ndarray:
        if self.raw is None:
            raise PthError("a tensor refers to a storage whose bytes are missing")
        if self.stype.dtype == "bfloat16":
            bits = np.frombuffer(self.raw, dtype="<u2").astype(np.uint32) << 16
            return bits.view(np.float32)
        return np.frombuffer(self.raw, dtype=np.dtype(self.stype.dtype).newbyteorder("<"))


class _TensorRef:
    """A tensor view into a storage; materialised once all bytes are known."""

    def __init__(self, storage: _Storage, offset: int, size: Tuple[int, ...], stride: Tuple[int, ...]):
        self.storage, self.offset, self.size, self.stride = storage, int(offset), tuple(size), tuple(stride)

    def to_numpy(self) -> np.ndarray:
        flat = self.storage.array()
        if not self.size:
            return flat[self.offset].copy().reshape(())
        need = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride)) + 1
        if min(self.size) > 0 and need > flat.size:
            raise PthError(f"a tensor of shape {list(self.size)} runs past the end of its storage "
                           f"({flat.size} elements); the file is truncated or corrupt")
        item = flat.itemsize
        view = np.lib.stride_tricks.as_strided(flat[self.offset:], shape=self.size,
                                               strides=[s * item for s in self.stride])
        return np.ascontiguousarray(view, dtype=view.dtype.newbyteorder("="))


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    if not isinstance(storage, _Storage):
        raise PthError("a tensor in the pickle does not point at a storage")
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *state):
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, fh, storages: Dict[str, _Storage], source: str):
        super().__init__(fh, encoding="latin1")
        self.storages, self.source = storages, source

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise PthError(f"{self.source} is not a plain state dict: its pickle holds a "
                       f"{module}.{name} object (a whole pickled model or other Python object). "
                       f"ppddpm reads state dicts only; {_FIX}")

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid or pid[0] not in ("storage", b"storage"):
            raise PthError(f"{self.source}: unknown persistent id {pid!r} in the pickle")
        stype, key, numel = pid[1], str(pid[2]), pid[4]
        if not isinstance(stype, _StorageType):
            raise PthError(f"{self.source}: storage {key} has an unknown type {stype!r}")
        if len(pid) > 5 and pid[5] is not None:
            raise PthError(f"{self.source}: storage views (old torch < 0.4 files) are not supported")
        if key not in self.storages:
            self.storages[key] = _Storage(stype, numel)
        return self.storages[key]


def _load_zip(path: str) -> Tuple[object, Dict[str, _Storage]]:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            raise PthError(f"{path} is a zip file but not a PyTorch checkpoint (no data.pkl)")
        root = pkl[0][: -len("data.pkl")]
        storages: Dict[str, _Storage] = {}
        obj = _Unpickler(io.BytesIO(zf.read(pkl[0])), storages, path).load()
        for key, st in storages.items():
            member = f"{root}data/{key}"
            if member not in names:
                raise PthError(f"{path}: storage {key} is missing from the archive")
            st.raw = zf.read(member)
            if len(st.raw) < st.numel * st.stype.itemsize:
                raise PthError(f"{path}: storage {key} is shorter than its {st.numel} elements")
    return obj, storages


class _Plain(pickle.Unpickler):
    """For the legacy header pickles: plain values only, no globals at all."""

    def find_class(self, module: str, name: str):
        raise PthError(f"unexpected {module}.{name} in a PyTorch file header")


def _load_legacy(path: str) -> Tuple[object, Dict[str, _Storage]]:
    with open(path, "rb") as fh:
        try:
            magic = _Plain(fh).load()
        except Exception:
            raise PthError(f"{path} is neither a zip nor a legacy PyTorch file; is it a .pth "
                           "state dict?") from None
        if magic != LEGACY_MAGIC:
            raise PthError(f"{path} is a pickle but not a PyTorch file (no torch magic number)")
        _Plain(fh).load()  # protocol version
        _Plain(fh).load()  # system info (byte order, type sizes)
        storages: Dict[str, _Storage] = {}
        obj = _Unpickler(fh, storages, path).load()
        keys = _Plain(fh).load()
        for key in keys:
            st = storages.get(str(key))
            if st is None:
                raise PthError(f"{path}: storage {key} listed but never used")
            head = fh.read(8)
            if len(head) != 8:
                raise PthError(f"{path} is truncated (storage {key})")
            (count,) = struct.unpack("<q", head)
            st.raw = fh.read(count * st.stype.itemsize)
            if len(st.raw) != count * st.stype.itemsize:
                raise PthError(f"{path} is truncated (storage {key})")
    return obj, storages


def _load(path: str):
    """The file's unpickled object, tensors still referring to their storages."""
    if not os.path.isfile(path):
        raise PthError(f"{path} does not exist")
    try:
        loader = _load_zip if zipfile.is_zipfile(path) else _load_legacy
        obj, _ = loader(path)
    except PthError:
        raise
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError, TypeError,
            IndexError, KeyError, AttributeError, struct.error, OSError) as exc:
        raise PthError(f"{path} is corrupt or not a PyTorch file ({type(exc).__name__}: {exc})") from None
    return obj


def _materialise(obj, path: str, where: str = ""):
    """Tensors -> numpy arrays inside dicts, lists and tuples of plain values."""
    if isinstance(obj, _TensorRef):
        return obj.to_numpy()
    if isinstance(obj, dict):
        return collections.OrderedDict((k, _materialise(v, path, f"{where}/{k}"))
                                       for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v, path, where) for v in obj)
    if obj is None or isinstance(obj, (str, bytes, int, float, bool)):
        return obj
    raise PthError(f"{path}: entry {where or '/'} is a {type(obj).__name__}, not a tensor or "
                   "plain value")


def read_pth_tree(path: str):
    """Load a PyTorch file holding nested dicts/lists of tensors and plain values (e.g. a
    training checkpoint {"state_dict": ..., "meta": ...}); tensors become numpy arrays.
    Only the globals of ``read_pth`` are resolved: any other object is refused."""
    return _materialise(_load(path), path)


def read_pth(path: str) -> "collections.OrderedDict[str, np.ndarray]":
    """Load a PyTorch state dict file as ``{name: numpy array}`` (native byte order).

    Raises PthError (a CheckpointError) naming the file and the fix when the file is
    missing, corrupt, or holds anything other than a flat mapping of names to tensors.
    """
    obj = _load(path)
    if isinstance(obj, _TensorRef) or not isinstance(obj, dict):
        kind = "a single tensor" if isinstance(obj, _TensorRef) else f"a {type(obj).__name__}"
        raise PthError(f"{path} holds {kind}, not a state dict (a mapping of "
                       f"parameter names to tensors); {_FIX}")
    out = collections.OrderedDict()
    for name, value in obj.items():
        if not isinstance(name, str) or not isinstance(value, _TensorRef):
            kind = "a nested dict" if isinstance(value, dict) else type(value).__name__
            raise PthError(f"{path} is not a flat state dict: entry {name!r} is {kind}, not a "
                           f"tensor (e.g. a training checkpoint wrapping the weights); {_FIX}")
        out[name] = value.to_numpy()
    return out
