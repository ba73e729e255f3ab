"""oneDNN matrix products for Paddle's dynamic graph (the library and binding of ``onednn.py``).

Paddle's CPU ``matmul`` and its gradient run two to four times slower than oneDNN's JIT GEMM
on the shapes of a UNet's attention and linear layers (benchmarks/RESULTS.md, issue 23), and
they were the largest cost of a training iteration after the convolutions. A
:class:`MatmulPlan` is one oneDNN matmul primitive for one (batch, M, K, N, transposes, bias)
configuration; transposed operands are described by their strides, so no copy is made.
``models/matmul.py`` decides when to use it.
"""
from __future__ import annotations

import ctypes
import threading
from collections import OrderedDict

import paddle

from . import onednn


def _plain_strides(shape):
    strides = [1] * len(shape)
    for i in range(len(shape) - 2, -1, -1):
        strides[i] = strides[i + 1] * shape[i + 1]
    return strides


def _operand_md(lib, batch, rows, cols, transposed):
    """The [batch?, rows, cols] operand of a product, stored plain as [.., cols, rows] when
    ``transposed``."""
    lead = [batch] if batch else []
    if not transposed:
        shape = lead + [rows, cols]
        return lib.strided_md(shape, _plain_strides(shape))
    stored = _plain_strides(lead + [cols, rows])
    strides = stored[:-2] + [1, rows]
    return lib.strided_md(lead + [rows, cols], strides)


class MatmulPlan:
    """y = op(a) @ op(b) (+ bias over the last axis), 2-D or batched 3-D, float32."""

    def __init__(self, lib, batch: int, m: int, k: int, n: int, trans_a: bool, trans_b: bool,
                 has_bias: bool):
        self.lib, self.batch = lib, batch
        self.out_shape = ([batch] if batch else []) + [m, n]
        self._mds = [_operand_md(lib, batch, m, k, trans_a), _operand_md(lib, batch, k, n, trans_b),
                     lib.plain_md(self.out_shape)]
        bias_md = None
        if has_bias:
            bias_md = lib.plain_md(([1] if batch else []) + [1, n])
            self._mds.append(bias_md)
        pd = ctypes.c_void_p()
        lib.check(lib.dnnl_matmul_primitive_desc_create(
            ctypes.byref(pd), lib.engine, self._mds[0], self._mds[1], bias_md,
            self._mds[2], None), "matmul")
        self._pd = pd
        self.impl = lib.impl_name(pd)
        self.primitive = lib.primitive(pd)
        self.mems = [lib.memory(md) for md in self._mds]
        self._busy = threading.Lock()   # the memory objects are rebound on every call

    def __call__(self, a, b, bias=None):
        y = paddle.empty(self.out_shape, dtype="float32")
        tensors = [a, b, y] + ([bias] if bias is not None else [])
        ids = [onednn.ARG_SRC, onednn.ARG_WEIGHTS, onednn.ARG_DST, onednn.ARG_BIAS]
        with self._busy:
            for mem, tensor in zip(self.mems, tensors):
                self.lib.dnnl_memory_set_data_handle(mem, tensor.data_ptr())
            self.lib.execute(self.primitive, list(zip(ids, self.mems)))
        return y

    def close(self):
        self.lib.dnnl_primitive_destroy(self.primitive)
        for mem in self.mems:
            self.lib.dnnl_memory_destroy(mem)
        self.lib.dnnl_primitive_desc_destroy(self._pd)
        for md in self._mds:
            self.lib.dnnl_memory_desc_destroy(md)


_PLANS: "OrderedDict[tuple, MatmulPlan]" = OrderedDict()
_LOCK = threading.Lock()
MAX_PLANS = 128   # distinct configurations kept (forward and both gradients of each layer)


def matmul(a, b, trans_a: bool = False, trans_b: bool = False, bias=None):
    """op(a) @ op(b) (+ bias) on contiguous float32 CPU tensors of rank 2, or rank 3 with
    one batch size; op transposes the last two axes when asked."""
    batch = a.shape[0] if len(a.shape) == 3 else 0
    m, k = (a.shape[-1], a.shape[-2]) if trans_a else (a.shape[-2], a.shape[-1])
    n = b.shape[-2] if trans_b else b.shape[-1]
    key = (batch, m, k, n, trans_a, trans_b, bias is not None)
    with _LOCK:
        plan = _PLANS.get(key)
        if plan is not None:
            _PLANS.move_to_end(key)
    if plan is None:
        plan = MatmulPlan(onednn.library(), *key)
        with _LOCK:
            _PLANS[key] = plan
            while len(_PLANS) > MAX_PLANS:
                _PLANS.popitem(last=False)[1].close()
    return plan(a, b, bias)
