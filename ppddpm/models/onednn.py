"""oneDNN convolutions for Paddle's dynamic graph, called through ctypes.

Paddle's CPU wheel ships oneDNN (``paddle/libs/libdnnl.so.3``) but its dynamic graph never
uses it: dygraph ``conv2d`` is im2col + GEMM, two to three times slower than oneDNN's JIT
kernels, and it was two thirds of a training step (docs/speed.md). This module calls that
same library's C API (stable within oneDNN 3.x) with no compiler and no extra package:

* one :class:`ConvPlan` per (input shape, weight shape, stride, padding), holding the forward,
  backward-data and backward-weights primitives. oneDNN picks the memory layouts it is
  fastest with (``format_tag any``); inputs are reordered into them and outputs back to
  Paddle's plain NCHW, with the reorder primitives built once per plan;
* the tensors' own buffers are bound to oneDNN memory objects on every call
  (``dnnl_memory_set_data_handle``); scratch buffers are ordinary Paddle tensors, so the
  memory is freed as soon as the call ends.

Only float32, groups 1, no dilation. ``models/conv.py`` decides when to use it.
"""
from __future__ import annotations

import ctypes
import glob
import os
import threading
from collections import OrderedDict
from typing import Optional, Sequence, Tuple

import paddle

from ..errors import PPDDPMError

# Values from oneDNN 3.x's dnnl_types.h / dnnl_common_types.h (ABI-stable within major 3).
_SUCCESS, _CPU, _F32, _TAG_ANY = 0, 1, 3, 1
_FORWARD_TRAINING, _CONVOLUTION_DIRECT = 64, 1
_Q_IMPL_INFO = 8
_Q_SRC, _Q_DIFF_SRC, _Q_WEIGHTS, _Q_DIFF_WEIGHTS, _Q_DST, _Q_DIFF_DST = 129, 130, 131, 132, 133, 134
_ARG_SRC, _ARG_DST, _ARG_WEIGHTS, _ARG_BIAS = 1, 17, 33, 41
_ARG_DIFF_SRC, _ARG_DIFF_DST, _ARG_DIFF_WEIGHTS, _ARG_DIFF_BIAS = 129, 145, 161, 169
ARG_SRC, ARG_DST, ARG_WEIGHTS, ARG_BIAS = _ARG_SRC, _ARG_DST, _ARG_WEIGHTS, _ARG_BIAS

_VP = ctypes.c_void_p
_PVP = ctypes.POINTER(_VP)
_INT = ctypes.c_int
_DIMS = ctypes.c_int64 * 12


class OneDNNUnavailable(PPDDPMError, RuntimeError):
    """The oneDNN library of this Paddle wheel cannot be used; the message says why."""


class _ExecArg(ctypes.Structure):
    _fields_ = [("arg", _INT), ("memory", _VP)]


_SIGNATURES = {
    "dnnl_engine_create": [_PVP, _INT, ctypes.c_size_t],
    "dnnl_stream_create": [_PVP, _VP, ctypes.c_uint],
    "dnnl_memory_desc_create_with_strides": [_PVP, _INT, _DIMS, _INT, _DIMS],
    "dnnl_memory_desc_create_with_tag": [_PVP, _INT, _DIMS, _INT, _INT],
    "dnnl_memory_desc_equal": [_VP, _VP],
    "dnnl_memory_desc_get_size": [_VP],
    "dnnl_memory_desc_destroy": [_VP],
    "dnnl_convolution_forward_primitive_desc_create":
        [_PVP, _VP, _INT, _INT, _VP, _VP, _VP, _VP, _DIMS, _DIMS, _DIMS, _DIMS, _VP],
    "dnnl_convolution_backward_data_primitive_desc_create":
        [_PVP, _VP, _INT, _VP, _VP, _VP, _DIMS, _DIMS, _DIMS, _DIMS, _VP, _VP],
    "dnnl_convolution_backward_weights_primitive_desc_create":
        [_PVP, _VP, _INT, _VP, _VP, _VP, _VP, _DIMS, _DIMS, _DIMS, _DIMS, _VP, _VP],
    "dnnl_reorder_primitive_desc_create": [_PVP, _VP, _VP, _VP, _VP, _VP],
    "dnnl_matmul_primitive_desc_create": [_PVP, _VP, _VP, _VP, _VP, _VP, _VP],
    "dnnl_primitive_desc_query": [_VP, _INT, _INT, _VP],
    "dnnl_primitive_desc_query_md": [_VP, _INT, _INT],
    "dnnl_primitive_desc_destroy": [_VP],
    "dnnl_primitive_create": [_PVP, _VP],
    "dnnl_primitive_destroy": [_VP],
    "dnnl_primitive_execute": [_VP, _VP, _INT, ctypes.POINTER(_ExecArg)],
    "dnnl_memory_create": [_PVP, _VP, _VP, _VP],
    "dnnl_memory_set_data_handle": [_VP, _VP],
    "dnnl_memory_destroy": [_VP],
    "dnnl_stream_wait": [_VP],
}
_RETURNS = {"dnnl_memory_desc_equal": _INT, "dnnl_memory_desc_get_size": ctypes.c_size_t,
            "dnnl_primitive_desc_query_md": _VP}


class _Library:
    """libdnnl.so.3 from the Paddle wheel, with one CPU engine and one stream."""

    def __init__(self, path: str):
        self.path = path
        self.lib = ctypes.CDLL(path)

        class _Version(ctypes.Structure):
            _fields_ = [("major", _INT), ("minor", _INT), ("patch", _INT),
                        ("hash", ctypes.c_char_p), ("cpu_runtime", ctypes.c_uint),
                        ("gpu_runtime", ctypes.c_uint)]
        self.lib.dnnl_version.restype = ctypes.POINTER(_Version)
        v = self.lib.dnnl_version().contents
        self.version = (v.major, v.minor, v.patch)
        self.description = "oneDNN {}.{}.{} at {}".format(*self.version, path)
        if v.major != 3:
            raise OneDNNUnavailable(f"{path} is oneDNN {v.major}.{v.minor}; ppddpm needs 3.x")
        for name, argtypes in _SIGNATURES.items():
            fn = getattr(self.lib, name)
            fn.argtypes = argtypes
            fn.restype = _RETURNS.get(name, _INT)
        self.engine, self.stream = _VP(), _VP()
        self.check(self.lib.dnnl_engine_create(ctypes.byref(self.engine), _CPU, 0), "engine")
        self.check(self.lib.dnnl_stream_create(ctypes.byref(self.stream), self.engine, 1),
                   "stream")

    def __getattr__(self, name):
        return getattr(self.lib, name)

    @staticmethod
    def check(status: int, what: str) -> None:
        if status != _SUCCESS:
            raise OneDNNUnavailable(f"oneDNN {what} failed (dnnl_status_t {status})")

    def plain_md(self, shape: Sequence[int]) -> _VP:
        """Row-major (NCHW / OIHW / vector) float32 memory descriptor."""
        strides = [1] * len(shape)
        for i in range(len(shape) - 2, -1, -1):
            strides[i] = strides[i + 1] * shape[i + 1]
        md = _VP()
        self.check(self.lib.dnnl_memory_desc_create_with_strides(
            ctypes.byref(md), len(shape), _DIMS(*shape), _F32, _DIMS(*strides)), "memory desc")
        return md

    def strided_md(self, shape: Sequence[int], strides: Sequence[int]) -> _VP:
        """float32 memory descriptor of a view with these element strides (a transpose)."""
        md = _VP()
        self.check(self.lib.dnnl_memory_desc_create_with_strides(
            ctypes.byref(md), len(shape), _DIMS(*shape), _F32, _DIMS(*strides)), "memory desc")
        return md

    def any_md(self, shape: Sequence[int]) -> _VP:
        md = _VP()
        self.check(self.lib.dnnl_memory_desc_create_with_tag(
            ctypes.byref(md), len(shape), _DIMS(*shape), _F32, _TAG_ANY), "memory desc")
        return md

    def primitive(self, pd: _VP) -> _VP:
        prim = _VP()
        self.check(self.lib.dnnl_primitive_create(ctypes.byref(prim), pd), "primitive")
        return prim

    def memory(self, md) -> _VP:
        mem = _VP()
        self.check(self.lib.dnnl_memory_create(ctypes.byref(mem), md, self.engine, None),
                   "memory")
        return mem

    def execute(self, primitive: _VP, args) -> None:
        """Run ``primitive`` on (argument id, memory) pairs and wait for it."""
        pairs = (_ExecArg * len(args))(*(_ExecArg(a, m) for a, m in args))
        self.check(self.lib.dnnl_primitive_execute(primitive, self.stream, len(args), pairs),
                   "execute")
        self.check(self.lib.dnnl_stream_wait(self.stream), "stream wait")

    def impl_name(self, pd: _VP) -> str:
        out = ctypes.c_char_p()
        self.check(self.lib.dnnl_primitive_desc_query(
            pd, _Q_IMPL_INFO, 0, ctypes.cast(ctypes.byref(out), _VP)), "query")
        return out.value.decode()


_LIB: Optional[_Library] = None
_LIB_ERROR: Optional[str] = None
_LOCK = threading.Lock()


def library() -> _Library:
    """The loaded library, or OneDNNUnavailable naming why not."""
    global _LIB, _LIB_ERROR
    with _LOCK:
        if _LIB is None and _LIB_ERROR is None:
            libs = os.path.join(os.path.dirname(paddle.__file__), "libs")
            found = sorted(glob.glob(os.path.join(libs, "libdnnl.so.3*")))
            try:
                if not found:
                    raise OneDNNUnavailable(f"no libdnnl.so.3 in {libs} (this Paddle wheel "
                                            "has no oneDNN, e.g. an ARM or GPU-only build)")
                _LIB = _Library(found[0])
            except (OSError, AttributeError, OneDNNUnavailable) as exc:
                _LIB_ERROR = str(exc)
        if _LIB is None:
            raise OneDNNUnavailable(_LIB_ERROR)
        return _LIB


def available() -> Tuple[bool, str]:
    """(True, "oneDNN x.y.z at <path>") or (False, the reason)."""
    if _LIB is not None:   # the hot path: asked on every conv call
        return True, _LIB.description
    try:
        lib = library()
    except OneDNNUnavailable as exc:
        return False, str(exc)
    return True, lib.description


class _Slot:
    """One argument of a primitive: the layout the primitive wants and, when that differs
    from Paddle's plain layout, the reorder between them (built once)."""

    def __init__(self, lib: _Library, plain_md: _VP, chosen_md, to_chosen: bool):
        self.plain_md = plain_md
        self.chosen = lib.memory(chosen_md)          # bound to a buffer on every call
        self.reorder = None
        if not lib.dnnl_memory_desc_equal(plain_md, chosen_md):
            self.nbytes = lib.dnnl_memory_desc_get_size(chosen_md)
            self.plain = lib.memory(plain_md)
            src, dst = (plain_md, chosen_md) if to_chosen else (chosen_md, plain_md)
            pd = _VP()
            lib.check(lib.dnnl_reorder_primitive_desc_create(
                ctypes.byref(pd), src, lib.engine, dst, lib.engine, None), "reorder")
            self.reorder_pd = pd
            self.reorder = lib.primitive(pd)
            mems = (self.plain, self.chosen) if to_chosen else (self.chosen, self.plain)
            self.reorder_args = (_ExecArg * 2)(_ExecArg(_ARG_SRC, mems[0]),
                                               _ExecArg(_ARG_DST, mems[1]))


def conv_output_shape(x_shape, w_shape, stride, padding) -> list:
    """[N, O, OH, OW] of a conv; padding is (top, bottom, left, right)."""
    n, _, h, w = x_shape
    o, _, kh, kw = w_shape
    top, bottom, left, right = padding
    return [n, o, (h + top + bottom - kh) // stride[0] + 1,
            (w + left + right - kw) // stride[1] + 1]


class ConvPlan:
    """Forward and backward primitives of one conv2d configuration."""

    def __init__(self, lib: _Library, x_shape, w_shape, has_bias: bool, stride, padding):
        self.lib = lib
        o = w_shape[0]
        top, bottom, left, right = padding
        self.y_shape = conv_output_shape(x_shape, w_shape, stride, padding)
        self.x_shape, self.w_shape, self.has_bias = list(x_shape), list(w_shape), has_bias
        plain = {"x": lib.plain_md(x_shape), "w": lib.plain_md(w_shape),
                 "y": lib.plain_md(self.y_shape), "b": lib.plain_md([o])}
        self._mds = list(plain.values())
        anys = [lib.any_md(s) for s in (x_shape, w_shape, self.y_shape)]
        self._mds += anys
        bias_md = plain["b"] if has_bias else None
        geometry = (_DIMS(*stride), _DIMS(0, 0), _DIMS(top, left), _DIMS(bottom, right))
        fwd, bwd_data, bwd_w = _VP(), _VP(), _VP()
        lib.check(lib.dnnl_convolution_forward_primitive_desc_create(
            ctypes.byref(fwd), lib.engine, _FORWARD_TRAINING, _CONVOLUTION_DIRECT,
            anys[0], anys[1], bias_md, anys[2], *geometry, None), "conv forward")
        lib.check(lib.dnnl_convolution_backward_data_primitive_desc_create(
            ctypes.byref(bwd_data), lib.engine, _CONVOLUTION_DIRECT,
            anys[0], anys[1], anys[2], *geometry, fwd, None), "conv backward data")
        lib.check(lib.dnnl_convolution_backward_weights_primitive_desc_create(
            ctypes.byref(bwd_w), lib.engine, _CONVOLUTION_DIRECT,
            anys[0], anys[1], bias_md, anys[2], *geometry, fwd, None), "conv backward weights")
        self._pds = [fwd, bwd_data, bwd_w]
        self.impl = {k: lib.impl_name(pd) for k, pd in
                     zip(("forward", "backward_data", "backward_weights"), self._pds)}
        q = lib.dnnl_primitive_desc_query_md
        self.fwd = self._build(fwd, [("x", _ARG_SRC, _Q_SRC, True),
                                     ("w", _ARG_WEIGHTS, _Q_WEIGHTS, True),
                                     ("y", _ARG_DST, _Q_DST, False)], plain, q)
        self.bwd_data = self._build(bwd_data, [("y", _ARG_DIFF_DST, _Q_DIFF_DST, True),
                                               ("w", _ARG_WEIGHTS, _Q_WEIGHTS, True),
                                               ("x", _ARG_DIFF_SRC, _Q_DIFF_SRC, False)], plain, q)
        self.bwd_w = self._build(bwd_w, [("x", _ARG_SRC, _Q_SRC, True),
                                         ("y", _ARG_DIFF_DST, _Q_DIFF_DST, True),
                                         ("w", _ARG_DIFF_WEIGHTS, _Q_DIFF_WEIGHTS, False)],
                                 plain, q)
        self.bias_mem = lib.memory(plain["b"])
        self._busy = threading.Lock()   # the memory objects are rebound on every call

    def _build(self, pd, specs, plain, query):
        lib = self.lib
        slots = [(_Slot(lib, plain[key], query(pd, q, 0), to_chosen), arg)
                 for key, arg, q, to_chosen in specs]
        return {"primitive": lib.primitive(pd), "slots": slots}

    def _run(self, step, tensors, extra=()):
        """Execute one primitive: tensors are the slots' plain Paddle tensors (inputs first,
        output last); extra are (arg, memory, tensor) bound as they are (the bias)."""
        with self._busy:
            self._run_locked(step, tensors, extra)

    def _run_locked(self, step, tensors, extra):
        lib, keep = self.lib, []
        args = []
        for (slot, arg), tensor in zip(step["slots"], tensors):
            if slot.reorder is None:
                lib.dnnl_memory_set_data_handle(slot.chosen, tensor.data_ptr())
            else:
                scratch = paddle.empty([(slot.nbytes + 3) // 4], dtype="float32")
                keep.append(scratch)
                lib.dnnl_memory_set_data_handle(slot.chosen, scratch.data_ptr())
                lib.dnnl_memory_set_data_handle(slot.plain, tensor.data_ptr())
            args.append(_ExecArg(arg, slot.chosen))
        for arg, mem, tensor in extra:
            lib.dnnl_memory_set_data_handle(mem, tensor.data_ptr())
            args.append(_ExecArg(arg, mem))
        *inputs, (out_slot, _) = step["slots"]
        for slot, _ in inputs:
            if slot.reorder is not None:
                lib.check(lib.dnnl_primitive_execute(slot.reorder, lib.stream, 2,
                                                     slot.reorder_args), "reorder")
        lib.check(lib.dnnl_primitive_execute(step["primitive"], lib.stream, len(args),
                                             (_ExecArg * len(args))(*args)), "execute")
        if out_slot.reorder is not None:
            lib.check(lib.dnnl_primitive_execute(out_slot.reorder, lib.stream, 2,
                                                 out_slot.reorder_args), "reorder")
        lib.check(lib.dnnl_stream_wait(lib.stream), "stream wait")
        del keep

    def forward(self, x, w, b=None):
        """y = conv(x, w) + b, all plain float32 CPU tensors."""
        y = paddle.empty(self.y_shape, dtype="float32")
        extra = [(_ARG_BIAS, self.bias_mem, b)] if self.has_bias else []
        self._run(self.fwd, [x, w, y], extra)
        return y

    def backward(self, x, w, dy, need_dx: bool = True):
        """(dx or None, dw, db or None) for y = conv(x, w) + b."""
        dx = None
        if need_dx:
            dx = paddle.empty(self.x_shape, dtype="float32")
            self._run(self.bwd_data, [dy, w, dx])
        dw = paddle.empty(self.w_shape, dtype="float32")
        db = paddle.empty([self.w_shape[0]], dtype="float32") if self.has_bias else None
        extra = [(_ARG_DIFF_BIAS, self.bias_mem, db)] if self.has_bias else []
        self._run(self.bwd_w, [x, dy, dw], extra)
        return dx, dw, db

    def close(self):
        lib = self.lib
        for step in (self.fwd, self.bwd_data, self.bwd_w):
            lib.dnnl_primitive_destroy(step["primitive"])
            for slot, _ in step["slots"]:
                lib.dnnl_memory_destroy(slot.chosen)
                if slot.reorder is not None:
                    lib.dnnl_primitive_destroy(slot.reorder)
                    lib.dnnl_primitive_desc_destroy(slot.reorder_pd)
                    lib.dnnl_memory_destroy(slot.plain)
        lib.dnnl_memory_destroy(self.bias_mem)
        for pd in self._pds:
            lib.dnnl_primitive_desc_destroy(pd)
        for md in self._mds:
            lib.dnnl_memory_desc_destroy(md)


_PLANS: "OrderedDict[tuple, ConvPlan]" = OrderedDict()
MAX_PLANS = 64   # distinct conv configurations kept (a UNet at one batch size has ~15)


def conv_plan(x_shape, w_shape, has_bias: bool, stride, padding) -> ConvPlan:
    """The cached plan for this configuration (built on first use, least recently used
    plans beyond MAX_PLANS are released)."""
    key = (tuple(x_shape), tuple(w_shape), bool(has_bias), tuple(stride), tuple(padding))
    with _LOCK:
        plan = _PLANS.get(key)
        if plan is not None:
            _PLANS.move_to_end(key)
            return plan
    plan = ConvPlan(library(), list(x_shape), list(w_shape), has_bias, stride, padding)
    with _LOCK:
        _PLANS[key] = plan
        while len(_PLANS) > MAX_PLANS:
            _PLANS.popitem(last=False)[1].close()
    return plan
