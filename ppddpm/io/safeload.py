"""The one reader of pickle-based files: an unpickler that builds only allowed globals.

A pickle can name any importable function and call it while it is read, so an untrusted
``.pdparam``, Inception cache or CIFAR-10 batch could run code. Every pickle ppddpm reads
goes through :func:`load_pickle`, whose ``find_class`` resolves only what ppddpm's own
files, the original reproduction's files and CIFAR-10 batches hold:

  * numpy arrays, dtypes and scalars (``numpy[._]core.multiarray._reconstruct`` /
    ``scalar``, ``numpy.ndarray``, ``numpy.dtype``), without object dtypes;
  * Paddle's tensor pickling: ``paddle.save`` writes a tensor as ``tuple((name, array))``
    and a DenseTensor as ``eval('data', {'data': array})`` (only that exact call is
    allowed); RNG states as ``paddle.base.libpaddle.GeneratorState``;
  * ``collections.OrderedDict``, plain containers, and ``_codecs.encode(text, 'latin1')``
    (how protocol-2 pickles store bytes).

Anything else is refused before it is built, with an :class:`UnsafeFileError` naming the
file and the global. :func:`load_paddle_file` then applies ``paddle.load``'s own
post-processing (re-joining parameters sliced by ``paddle.save``'s protocol 2/3 big-tensor
format, and turning arrays into tensors) so callers get the same dict ``paddle.load``
gives. Loading never needs ``pickle.load`` or ``paddle.load`` elsewhere in the package.
"""
from __future__ import annotations

import collections
import io
import pickle
from typing import Any, Callable, Dict, Tuple, Union

import numpy as np
import paddle
from paddle.base import libpaddle

from ..errors import PPDDPMError

__all__ = ["UnsafeFileError", "load_pickle", "load_paddle_file", "ALLOWED_GLOBALS"]

# paddle.save's markers (paddle/framework/io.py and io_utils.py, Paddle 2.1 to 3.3).
NAME_TABLE = "StructuredToParameterName@@"
SLICE_TABLE = "UnpackBigParamInfor@@"   # sic: Paddle's spelling


class UnsafeFileError(PPDDPMError):
    """A pickle asks for a global that ppddpm does not build (it could run code)."""


class _Refused(Exception):
    """Raised inside the unpickler; load_pickle words it with the file's name."""

    def __init__(self, what: str, why: str = ""):
        super().__init__(what)
        self.what, self.why = what, why


def _reconstruct(subtype, shape, dtype_code):
    """numpy's array rebuild (``ndarray.__reduce__``), for plain ndarrays only."""
    if subtype is not np.ndarray:
        raise _Refused("numpy.core.multiarray._reconstruct", f"of a {subtype!r}")
    return np.ndarray.__new__(np.ndarray, shape, _dtype(dtype_code))


def _dtype(*args):
    dt = np.dtype(*args)
    if dt.hasobject:
        raise _Refused("numpy.dtype", "of Python objects")
    return dt


def _scalar(dtype, data=None):
    """numpy's scalar rebuild (``numpy.core.multiarray.scalar``) for non-object dtypes."""
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise _Refused("numpy.core.multiarray.scalar", "of Python objects")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _latin1_encode(text, encoding="latin1"):
    """``_codecs.encode`` as protocol-2 pickles use it to store bytes."""
    if not isinstance(text, str) or str(encoding).replace("-", "").replace("_", "") != "latin1":
        raise _Refused("_codecs.encode", f"with encoding {str(encoding)[:20]!r}")
    return text.encode("latin1")


class _TensorEval:
    """Stands in for ``builtins.eval``: Paddle pickles a DenseTensor as
    ``eval('data', {'data': array})``; that exact call returns the array, any other is refused."""

    def __call__(self, expr, namespace=None, *rest):
        if (expr == "data" and not rest and isinstance(namespace, dict)
                and set(namespace) == {"data"} and isinstance(namespace["data"], np.ndarray)):
            return namespace["data"]
        raise _Refused("builtins.eval", f"of {str(expr)[:60]!r} (not Paddle's tensor form)")


def _generator_state():
    return libpaddle.GeneratorState


# (module, name) -> the object to use, or a zero-argument factory (marked by a tuple) for
# things that are imported only when a file asks for them.
ALLOWED_GLOBALS: Dict[Tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "tuple"): tuple, ("builtins", "list"): list, ("builtins", "dict"): dict,
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset,
    ("_codecs", "encode"): _latin1_encode,
    ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): _dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("paddle.base.libpaddle", "GeneratorState"): (_generator_state,),
}


def _refusal(source: str, what: str, why: str) -> str:
    return (f"refused to load {source}: its pickle asks for {what}{' ' + why if why else ''}, "
            "which could run code; ppddpm loads only numpy arrays, Paddle tensors and plain "
            "values from .pdparam/.pdparams/CIFAR-10 files (use a .safetensors file, or "
            "re-save the weights where you trust the code)")


# Python 2 module names that protocol 0-2 pickles use (pickle maps them only in the
# find_class this class replaces).
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        module = _PY2_MODULES.get(module, module)
        if (module, name) == ("builtins", "eval"):
            return _TensorEval()
        found = ALLOWED_GLOBALS.get((module, name))
        if found is None:
            raise _Refused(f"{module}.{name}")
        return found[0]() if isinstance(found, tuple) else found

    def persistent_load(self, pid):
        raise pickle.UnpicklingError(f"unsupported persistent id {str(pid)[:40]!r}")


def load_pickle(src: Union[str, bytes], source: str = None, encoding: str = "latin1") -> Any:
    """Unpickle a file path or bytes with the allow-list; ``source`` names it in errors.

    Raises UnsafeFileError for a refused global; a damaged pickle raises what ``pickle``
    raises (UnpicklingError, EOFError, ValueError, ...) for the caller to word.
    """
    source = source or (str(src) if isinstance(src, str) else "<bytes>")
    try:
        if isinstance(src, (bytes, bytearray, memoryview)):
            return _SafeUnpickler(io.BytesIO(src), encoding=encoding).load()
        with open(src, "rb") as fh:
            return _SafeUnpickler(fh, encoding=encoding).load()
    except _Refused as refused:
        raise UnsafeFileError(_refusal(source, refused.what, refused.why)) from None


# ---- paddle.load's post-processing ------------------------------------------------------

def _join_slices(obj: dict) -> dict:
    """Undo paddle.save's big-parameter slicing (protocol 2/3: arrays over 1 GiB are stored
    flat as ``key@@.0``, ``key@@.1``, ... with their shape in SLICE_TABLE)."""
    table = obj.pop(SLICE_TABLE, None)
    if not isinstance(table, dict):
        return obj
    for key, info in table.items():
        parts = [obj.pop(part) for part in info["slices"]]
        obj[key] = np.concatenate(parts).reshape(info["OriginShape"])
    return obj


def _is_named_array(x) -> bool:          # how paddle.save pickles a dygraph tensor
    return (isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str)
            and isinstance(x[1], np.ndarray))


def _contains(obj, test: Callable[[Any], bool]) -> bool:
    if test(obj):
        return True
    if type(obj) in (dict, collections.OrderedDict):
        return any(_contains(v, test) for v in obj.values())
    if type(obj) in (list, tuple):
        return any(_contains(v, test) for v in obj)
    return False


def _convert_all(obj, test, convert):
    if test(obj):
        return convert(obj)
    if type(obj) in (dict, collections.OrderedDict):
        for key in list(obj):
            obj[key] = _convert_all(obj[key], test, convert)
        return obj
    if type(obj) in (list, tuple, set):
        return type(obj)(_convert_all(v, test, convert) for v in obj)
    return obj


def _to_tensor(array: np.ndarray, name: str = ""):
    t = paddle.to_tensor(array)
    if name:
        t.name = name
    return t


def paddle_postprocess(obj: Any, return_numpy: bool = False) -> Any:
    """What paddle.load does after unpickling (Paddle 3.3's ``load``): tensors come back as
    paddle tensors unless ``return_numpy``."""
    if isinstance(obj, dict):
        obj = _join_slices(obj)
        if NAME_TABLE in obj:                     # a state dict saved by paddle.save
            names = obj.pop(NAME_TABLE)
            for key, name in (names.items() if isinstance(names, dict) else ()):
                if isinstance(obj.get(key), np.ndarray) and not return_numpy:
                    obj[key] = _to_tensor(obj[key], name)
            return obj
    if _contains(obj, _is_named_array):          # tensors inside other containers
        return _convert_all(obj, _is_named_array,
                            lambda x: x[1] if return_numpy else _to_tensor(x[1], x[0]))
    if return_numpy:
        return obj
    return _convert_all(obj, lambda x: isinstance(x, np.ndarray), _to_tensor)


def load_paddle_file(path: str, return_numpy: bool = False) -> Any:
    """``paddle.load(path, return_numpy=...)`` for pickle files, through the allow-list."""
    return paddle_postprocess(load_pickle(path), return_numpy)
