"""The FID-Inception parity fixture's random weights, written as a real zip-layout .pth.

``write_pth(path, state)`` writes what torch.save(state_dict) writes (torch >= 1.6 zip
layout: archive/data.pkl, archive/data/<key>, archive/version), with the pickle spelled
out opcode by opcode, so tests need no PyTorch. ``random_weights_pth(path)`` writes the
~95 MB random FID-Inception state dict that tools/make_inception_fixture.py fed to
pytorch-fid (same seed, same per-tensor draws).
"""
from __future__ import annotations

import json
import os
import struct
import zipfile

import numpy as np

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
_STORAGE = {np.dtype(np.float32): "FloatStorage", np.dtype(np.float64): "DoubleStorage",
            np.dtype(np.int64): "LongStorage", np.dtype(np.float16): "HalfStorage"}


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"      # GLOBAL


def _str(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b                           # BINUNICODE


def _int(i: int) -> bytes:
    return b"J" + struct.pack("<i", i)                                    # BININT


def _tuple(parts) -> bytes:
    return b"(" + b"".join(parts) + b"t"                                  # MARK ... TUPLE


def _ordered_dict() -> bytes:
    return _global("collections", "OrderedDict") + b")R"                  # OrderedDict()


def write_pth(path: str, state) -> None:
    """torch.save(state) for a {name: numpy array} dict, in the zip layout; values may also
    be nested dicts, text, ints and floats (as in a training checkpoint)."""
    blobs = []

    def value(obj) -> bytes:
        if isinstance(obj, dict):
            return (_ordered_dict() + b"(" + b"".join(_str(k) + value(v) for k, v in obj.items())
                    + b"u")                                                # SETITEMS
        if isinstance(obj, str):
            return _str(obj)
        if isinstance(obj, bool):
            return b"\x88" if obj else b"\x89"                                # NEWTRUE/NEWFALSE
        if isinstance(obj, int):
            return _int(obj)
        if isinstance(obj, float):
            return b"G" + struct.pack(">d", obj)                              # BINFLOAT
        arr = np.ascontiguousarray(obj)
        i = len(blobs)
        stride = [int(s // arr.itemsize) for s in arr.strides]
        pid = _tuple([_str("storage"), _global("torch", _STORAGE[arr.dtype]), _str(str(i)),
                      _str("cpu"), _int(arr.size)]) + b"Q"               # BINPERSID
        blobs.append(arr.astype(arr.dtype.newbyteorder("<")).tobytes())
        return (_global("torch._utils", "_rebuild_tensor_v2") + b"(" + pid + _int(0)
                + _tuple(_int(d) for d in arr.shape) + _tuple(_int(s) for s in stride)
                + b"\x89" + _ordered_dict() + b"tR")                      # NEWFALSE, REDUCE

    pkl = b"\x80\x02" + value(dict(state)) + b"."                           # STOP
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", pkl)
        for i, blob in enumerate(blobs):
            zf.writestr(f"archive/data/{i}", blob)
        zf.writestr("archive/version", "3\n")


def engine_cache(tmp_path_factory) -> str:
    """One folder per test session for Inception predictor exports, shared by the test
    modules (an export takes seconds), independent of $PPDDPM_ENGINE_CACHE."""
    path = tmp_path_factory.getbasetemp() / "inception_engines"
    path.mkdir(exist_ok=True)
    return str(path)


def fixture_meta() -> dict:
    with open(os.path.join(FIXTURES, "inception_keys.json")) as fh:
        return json.load(fh)


def random_state():
    """The fixture's random weights under pytorch-fid's keys (incl. num_batches_tracked)."""
    from ppddpm.evaluate.metrics.inception_weights import random_torch_state
    meta = fixture_meta()
    return random_torch_state([(k, tuple(s)) for k, s in meta["keys"]], meta["weight_seed"])


_written = []   # the first file written in this process; later calls copy it


def random_weights_pth(path: str) -> str:
    import shutil
    if _written and os.path.isfile(_written[0]):
        shutil.copyfile(_written[0], path)
    else:
        write_pth(path, random_state())
        _written[:] = [path]
    return path


def large_image() -> np.ndarray:
    """The fixture's large input, regenerated as the tool made it."""
    meta = fixture_meta()
    return np.random.RandomState(meta["image_seed"] + 1).randint(
        0, 256, tuple(meta["large_shape"])).astype(np.uint8)
