"""The network run by ONNX Runtime: the fastest CPU engine (benchmarks/RESULTS.md).

The ONNX graph is converted, in-process, from the same PIR program the Paddle Inference
predictor runs (``engine.export``), by paddle2onnx's Python API. The export, the check
against the dynamic graph, the cache and the call are ``engine.InferenceModel``'s; this file
only writes ``model.onnx``, opens the session and runs it.

paddle2onnx 2.1 writes each ``group_norm`` of a Paddle 3.3 PIR program as Reshape +
InstanceNormalization + Reshape, but reads the op's float64 ``epsilon`` attribute as garbage
(0, 1.0, 1e21, -3e34, ...: outputs off by 0.15, or NaN). ``fix_norm_epsilons`` retypes the
attribute as float32 in the program before the conversion, and the epsilon comes out right.

Needs the ``onnx`` extra: ``pip install "ppddpm[onnx]"`` (onnxruntime, paddle2onnx, onnx).
"""
from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import sys
from typing import Dict, List, Optional

import numpy as np

from . import predictor
from .predictor import EngineError, InferenceModel

ONNX_FILE = "model.onnx"
WEIGHTS_FILE = "weights.bin"   # its initializers, as ONNX external data
OPSET = 17
INSTALL_HINT = 'pip install "ppddpm[onnx]" (in a checkout: pip install -e ".[onnx]")'
_NORM_OPS = ("1.group_norm", "1.instance_norm")


def missing_packages() -> List[str]:
    """The packages of the onnx extra that cannot be imported (empty when all are there)."""
    missing = []
    for name in ("onnxruntime", "paddle2onnx", "onnx"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def available() -> bool:
    return not missing_packages()


def require() -> None:
    missing = missing_packages()
    if missing:
        raise EngineError(f"--engine onnxruntime needs {', '.join(missing)}: {INSTALL_HINT}")


# -- conversion ------------------------------------------------------------------------------
def fix_norm_epsilons(graph_json: str) -> int:
    """Retype the float64 ``epsilon`` of every norm op in a PIR ``model.json`` as float32,
    which paddle2onnx 2.1 reads correctly (it reads a float64 one as garbage). The value is
    unchanged up to float32 rounding, which is what the runtime computes in anyway. Returns
    how many attributes were retyped."""
    with open(graph_json) as f:
        program = json.load(f)
    count = 0

    def walk(node):
        nonlocal count
        if isinstance(node, dict):
            if node.get("#") in _NORM_OPS:
                for attr in node.get("A", []):
                    if attr.get("N") == "epsilon" and attr["AT"].get("#") == "0.a_f64":
                        attr["AT"]["#"] = "0.a_f32"
                        count += 1
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(program)
    if count:
        with open(graph_json, "w") as f:
            json.dump(program, f, separators=(",", ":"))
    return count


@contextlib.contextmanager
def _silenced():
    """stdout and stderr, of Python and of C++ code alike, sent to /dev/null."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


def _paddle2onnx(graph: str, params: str) -> bytes:
    import paddle2onnx  # the onnx extra: a heavy optional dependency, imported when used
    with _silenced():   # its C++ core prints "[Paddle2ONNX] ..." lines on every export
        return paddle2onnx.export(graph, params, None, opset_version=OPSET,
                                  enable_onnx_checker=False, verbose=False)


def undefined_inputs(model) -> List[str]:
    """Names that nodes read but nothing defines (graph input, initializer, node output), in
    order of first use: the parameters of a graph converted without its weights."""
    defined = {i.name for i in model.graph.input} | {i.name for i in model.graph.initializer}
    defined |= {o for n in model.graph.node for o in n.output} | {""}
    seen, names = set(), []
    for node in model.graph.node:
        for name in node.input:
            if name not in defined and name not in seen:
                seen.add(name)
                names.append(name)
    return names


def attach_external_weights(model, weights: Dict[str, object], folder: str) -> None:
    """Add every undefined input of ``model`` as an initializer whose data lives in
    ``folder/WEIGHTS_FILE`` (ONNX external data), written one array at a time from
    ``weights`` (name -> paddle tensor or array). Offsets are page-aligned, so ONNX Runtime
    may map the file instead of reading it."""
    from onnx import TensorProto, helper  # the onnx extra (optional), imported when used
    offset = 0
    with open(os.path.join(folder, WEIGHTS_FILE), "wb") as f:
        for name in undefined_inputs(model):
            value = weights[name]
            arr = np.ascontiguousarray(value.numpy() if hasattr(value, "numpy") else value)
            f.write(b"\0" * (-offset % 4096))
            offset += -offset % 4096
            f.write(arr.tobytes())
            tensor = TensorProto(name=name, dims=list(arr.shape),
                                 data_type=helper.np_dtype_to_tensor_dtype(arr.dtype),
                                 data_location=TensorProto.EXTERNAL)
            for key, val in (("location", WEIGHTS_FILE), ("offset", str(offset)),
                             ("length", str(arr.nbytes))):
                entry = tensor.external_data.add()
                entry.key, entry.value = key, val
            model.graph.initializer.append(tensor)
            offset += arr.nbytes


def convert(paddle_dir: str, onnx_path: str, weights: Optional[Dict[str, object]] = None) -> None:
    """paddle2onnx, in-process, of the ``engine.export`` in ``paddle_dir`` (norm epsilons
    fixed first) to ``onnx_path``. No constant folding here: ONNX Runtime folds at load.

    ``weights`` (parameter name -> tensor, the exported network's): convert the graph without
    its weights and write them beside it from these tensors (``attach_external_weights``).
    paddle2onnx 2.1 holds about five copies of the weights while converting them (+690 MB
    for the CIFAR-10 UNet, which was a first call's peak memory); without them it converts
    170 KB. Where a name is missing the weights are converted the usual way."""
    import onnx  # the onnx extra (optional), imported when used
    graph, params = predictor.model_files(paddle_dir)
    fix_norm_epsilons(graph)
    if weights is not None:
        model = onnx.load_from_string(_paddle2onnx(graph, os.path.join(paddle_dir, "none")))
        if all(name in weights for name in undefined_inputs(model)):
            attach_external_weights(model, weights, os.path.dirname(onnx_path))
            onnx.save(model, onnx_path)
            return
    raw = _paddle2onnx(graph, params)
    with open(onnx_path, "wb") as f:
        f.write(raw)


class OnnxModel(InferenceModel):
    """``model`` run by ONNX Runtime on the CPU; the same arguments and call as
    ``InferenceModel`` (threads: intra-op threads of the session)."""
    runtime = "onnxruntime"
    title = "ONNX Runtime"

    def __init__(self, *args, **kwargs):
        require()
        self._names = None   # the session's input names, set by _load
        super().__init__(*args, **kwargs)

    def _complete(self, folder: str) -> bool:
        return os.path.isfile(os.path.join(folder, ONNX_FILE))

    def _write(self, tmp: str, shape) -> None:
        paddle_dir = os.path.join(tmp, "paddle")
        os.mkdir(paddle_dir)
        net = predictor.export(self.model, paddle_dir, shape, self.num_classes is not None)
        weights = {p.name: p for p in net.parameters()}
        weights.update((b.name, b) for b in net.buffers() if b.name not in weights)
        convert(paddle_dir, os.path.join(tmp, ONNX_FILE), weights)
        shutil.rmtree(paddle_dir)   # the cache keeps only what the session reads

    def _load(self, folder: str):
        import onnxruntime as ort  # the onnx extra (optional), imported when used
        if self.device != "cpu":
            raise EngineError("the onnxruntime engine runs on the CPU only; use --engine "
                              "inference or dygraph on a GPU")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3   # no optimiser warnings on stderr
        # The pool's idle threads spin briefly between ops (ONNX Runtime's default, as torch's
        # OpenMP threads do): 5-8% faster per evaluation on a quiet 2-core machine
        # (benchmarks/RESULTS.md). OMP_WAIT_POLICY=PASSIVE makes them sleep at once instead,
        # the better choice on a machine busy with other work.
        if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(os.path.join(folder, ONNX_FILE), opts,
                                       providers=["CPUExecutionProvider"])
        self._names = [i.name for i in session.get_inputs()]
        return session

    def _run(self, x: np.ndarray, t: np.ndarray, y: Optional[np.ndarray]) -> np.ndarray:
        feeds = {"x": x, "t": t}
        if self.num_classes is not None:
            feeds["y"] = y if y is not None else np.full_like(t, self.num_classes)
        return self._predictor.run(None, {n: np.ascontiguousarray(feeds[n]) for n in self._names})[0]
