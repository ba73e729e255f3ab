"""Sampling engines: the network run by the Paddle Inference predictor, or the dynamic graph.

Paddle's dynamic graph runs conv2d on the CPU without oneDNN; the same network saved with
``paddle.jit.save`` and run by ``paddle.inference`` with oneDNN is much faster (docs/speed.md
and benchmarks/RESULTS.md measure both against PyTorch). So for sampling, ``InferenceModel`` exports the network once, with a dynamic batch dimension, to
a cache folder keyed by a hash of the weights, the network's structure, the input shape and
the Paddle and ppddpm versions, and then calls the predictor. It is a drop-in for the
network: ``engine(x, t, y=None)`` returns a paddle tensor and it carries ``data_range``,
so every sampler drives either engine through the same call.

Each export is checked against the dynamic graph on a small batch before it is used or
cached: Paddle 3.3's inference passes have been seen to compute wrong values for some
graphs (see models/layers.py), and a fast wrong answer is worse than a slow right one.
"""
from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import shutil
import sys
from typing import Optional, Sequence

import numpy as np
import paddle
from paddle import inference
from paddle.jit.dy2static import parameter_recorder
from tqdm import tqdm

from ..errors import PPDDPMError
from ..io.files import atomic_write_dir
from ..runtime.heap import trim_heap
from ..runtime.threads import sampling_threads
from .cache import MARKER, default_cache_dir, engine_key, model_files, prune_cache

# Exports kept in the cache (least recently used go first); ~140 MB each for CIFAR-10.
CACHE_KEEP = int(os.environ.get("PPDDPM_ENGINE_CACHE_KEEP", "8"))
# Exported and dynamic-graph outputs must agree this closely (|a - b| <= ATOL + RTOL |b|).
VERIFY_ATOL, VERIFY_RTOL = 1e-4, 1e-3
# A batch is run in chunks of at most this many pixels (images x H x W): 16 CIFAR images.
# Chunks this large are as fast per image as one big call, and the runtime's activation
# memory stays a fraction of it (benchmarks/RESULTS.md, "micro-batches"). Larger images get
# fewer per chunk, at least one.
MICRO_BATCH_PIXELS = 16 * 32 * 32


def micro_batch_for(image_shape: Sequence[int]) -> int:
    """Images per runtime call for [C, H, W] images (see MICRO_BATCH_PIXELS)."""
    return max(1, MICRO_BATCH_PIXELS // max(1, int(image_shape[-1]) * int(image_shape[-2])))


class EngineError(PPDDPMError):
    """The network could not be exported to, or run by, the Paddle Inference predictor."""


def on_gpu() -> bool:
    return paddle.is_compiled_with_cuda() and paddle.get_device().startswith("gpu")


# -- export ----------------------------------------------------------------------------
def _input_spec(image_shape, with_labels):
    spec = [paddle.static.InputSpec([None] + [int(s) for s in image_shape], "float32", "x"),
            paddle.static.InputSpec([None], "int64", "t")]
    if with_labels:
        spec.append(paddle.static.InputSpec([None], "int64", "y"))
    return spec


class _Traced(paddle.nn.Layer):
    """``net`` recorded by running its Python once in static mode (tracing), without
    dy2static's source-to-source conversion of every forward: that conversion took 90% of an
    export (about 20 of 21 s for a 650K-parameter UNet on the loaded 2-core machine, against
    1.5 s traced). The networks' control flow depends on shapes and arguments only, never on
    tensor values; a network whose forward needs them fails to export, and the check against the dynamic graph
    catches any wrong export."""

    def __init__(self, net: paddle.nn.Layer):
        super().__init__()
        self.net = net

    @paddle.jit.not_to_static
    def forward(self, x, t, y=None):
        return self.net(x, t) if y is None else self.net(x, t, y)


# paddle.jit's tracing records each parameter's static Value under id(program) and forgets it
# only when the trace succeeds. After a failed trace, a later program built at the same address
# finds those freed Values (Paddle 3.3.1: a SIGFPE inside the next jit.save in the process).
_TRACE_RECORDS = ((parameter_recorder._global_parameter_recorder, ("params_dict", "tensor2value")),
                  (parameter_recorder._global_inplace_map, ("params_dict",)))


def _trace_records() -> list:
    return [getattr(owner, name, {}) for owner, names in _TRACE_RECORDS for name in names]


def _trace_record_keys() -> list:
    return [set(record) for record in _trace_records()]


@contextlib.contextmanager
def forget_failed_trace():
    """Run a ``paddle.jit.save``; if it fails, drop what its trace left in paddle.jit's
    records (see _TRACE_RECORDS), so that the next export in this process is safe."""
    before = _trace_record_keys()
    try:
        yield
    except BaseException:
        for record, keys in zip(_trace_records(), before):
            for key in set(record) - keys:
                del record[key]
        raise


def export(model: paddle.nn.Layer, folder: str, image_shape, with_labels: bool) -> paddle.nn.Layer:
    """``paddle.jit.save`` ``model`` in eval mode (batch dimension dynamic) into ``folder``:
    traced, which leaves ``model`` as it was (no copy of the weights is needed, which keeps a
    first call's peak memory down), or, where tracing fails (a forward that reshapes with
    ``x.shape[0]``, which is -1 while tracing, as the toy MLP does), converted by dy2static,
    on a copy, since that conversion rewrites the layer's forward. Returns the network that
    was saved (``model`` or that copy), whose parameter names the program uses."""
    was_training = model.training
    model.eval()
    spec, path = _input_spec(image_shape, with_labels), os.path.join(folder, "model")
    net = model
    try:
        with forget_failed_trace():
            paddle.jit.save(_Traced(model), path, input_spec=spec)
    except Exception:
        for name in os.listdir(folder):
            os.remove(os.path.join(folder, name))
        net = copy.deepcopy(model)
        with forget_failed_trace():
            paddle.jit.save(net, path, input_spec=spec)
    finally:
        if was_training:
            model.train()
    if model_files(folder) is None:
        raise EngineError(f"paddle.jit.save wrote no model file into {folder}")
    return net


class InferenceModel:
    """``model`` run by the Paddle Inference predictor; call it as the network itself.

    image_shape: [C, H, W]; None exports on the first call, from that call's input.
    cache_dir: where exports are kept (default ``$PPDDPM_ENGINE_CACHE`` or
    ~/.cache/ppddpm/engines). threads: CPU math threads (default: the user's
    OMP_NUM_THREADS, else every available core; see runtime/threads.py).
    verify: compare a fresh export against the dynamic graph before using it.
    keep_model: False drops this object's reference to the dynamic-graph network once the
    runtime holds the weights (its memory is freed if the caller keeps none); the engine then
    serves only ``image_shape``.
    progress: show one progress line while exporting (default: when stderr is a terminal).
    micro_batch: images per runtime call; bigger batches run in chunks (default: from the
    image size, see MICRO_BATCH_PIXELS).

    Subclasses for other runtimes (engine_onnx.OnnxModel) override ``runtime`` (part of the
    cache key), ``_write`` (the files of an export), ``_complete``, ``_load`` and ``_run``;
    the cache, the atomic export, the check and the call are shared.
    """
    runtime = "inference"
    title = "Paddle Inference"

    def __init__(self, model: paddle.nn.Layer, image_shape: Optional[Sequence[int]] = None,
                 cache_dir: Optional[str] = None, threads: Optional[int] = None,
                 verify: bool = True, keep_model: bool = True, progress: Optional[bool] = None,
                 micro_batch: Optional[int] = None):
        self.model = model
        self._micro_batch = micro_batch
        self.keep_model = keep_model
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.data_range = getattr(model, "data_range", (-1.0, 1.0))
        self.num_classes = getattr(model, "num_classes", None)
        self.cache_dir = cache_dir or default_cache_dir()
        self.threads = int(threads or sampling_threads())
        self.verify = verify
        self.device = "gpu" if on_gpu() else "cpu"
        self.exported = False      # True when this object wrote the export (not a cache hit)
        self.path: Optional[str] = None
        self._predictor = None
        self._shape = None
        if image_shape is not None:
            self.prepare(image_shape)

    # -- building ----------------------------------------------------------------------
    def prepare(self, image_shape: Sequence[int]) -> "InferenceModel":
        """Load the export for [C, H, W] images from the cache, exporting it if missing."""
        shape = tuple(int(s) for s in image_shape)
        if self._predictor is not None and shape == self._shape:
            return self
        if self.model is None:
            raise EngineError(f"this engine was built for {list(self._shape)} images and no "
                              f"longer holds the network; got {list(shape)}")
        key = engine_key(self.model, shape, self.num_classes is not None, self.device, self.runtime)
        folder = os.path.join(self.cache_dir, key)
        with _stages(f"{self.title}: export and check, once per weights file",
                     self.progress) as stage:
            try:
                if not self._complete(folder):
                    stage("export")
                    self._export_to(folder, shape)
                    trim_heap()   # the export's garbage, before the runtime loads
                else:
                    os.utime(folder)   # recently used: pruning keeps it
                stage("load")
                try:
                    self._predictor = self._load(folder)
                except Exception:
                    if self.exported:
                        raise
                    shutil.rmtree(folder, ignore_errors=True)   # a damaged cache entry: redo it
                    stage("export")
                    self._export_to(folder, shape)
                    self._predictor = self._load(folder)
                self._shape, self.path = shape, folder
                if self.exported and self.verify:
                    stage("check")
                    self._check(shape, folder)
            except EngineError:
                raise
            except Exception as exc:  # the runtimes raise many types; all mean "this engine is out"
                raise EngineError(f"could not export the network to {self.title} "
                                  f"({_first_line(exc)})") from exc
        if not self.keep_model:
            self.model = None
        return self

    def _complete(self, folder: str) -> bool:
        return model_files(folder) is not None

    def _write(self, tmp: str, shape) -> None:
        """The runtime's files for [C, H, W] inputs, written into the empty folder ``tmp``."""
        export(self.model, tmp, shape, self.num_classes is not None)

    def _export_to(self, folder: str, shape) -> None:
        def write(tmp: str) -> None:
            self._write(tmp, shape)
            with open(os.path.join(tmp, "meta.json"), "w") as f:
                json.dump({"engine": MARKER, "image_shape": list(shape),
                           "class": type(self.model).__qualname__, "paddle": paddle.__version__,
                           "runtime": self.runtime}, f)
        # atomic; a concurrent export of the same key wins
        atomic_write_dir(folder, write, self._complete)
        self.exported = True
        prune_cache(self.cache_dir, CACHE_KEEP)

    def _load(self, folder: str):
        graph, params = model_files(folder)
        config = inference.Config(graph, params)
        if self.device == "gpu":
            config.enable_use_gpu(256, paddle.distributed.ParallelEnv().device_id)
        else:
            config.disable_gpu()
            if hasattr(config, "enable_onednn"):
                config.enable_onednn()
            else:  # older Paddle names it mkldnn
                config.enable_mkldnn()
            config.set_cpu_math_library_num_threads(self.threads)
        config.disable_glog_info()
        return inference.create_predictor(config)

    def _check(self, shape, folder: str) -> None:
        """The export must reproduce the dynamic graph on two images (batch dim exercised)."""
        rng = np.random.default_rng(0)
        x = rng.standard_normal((2,) + shape).astype(np.float32)
        t = np.array([0, 999], dtype=np.int64) % max(1, _num_steps(self.model))
        y = None if self.num_classes is None else np.array([0, self.num_classes], dtype=np.int64)
        got = self._run(x, t, y)
        was_training = self.model.training
        self.model.eval()
        with paddle.no_grad():
            want = self.model(paddle.to_tensor(x), paddle.to_tensor(t),
                              *([] if y is None else [paddle.to_tensor(y)])).numpy()
        if was_training:
            self.model.train()
        err = np.abs(got - want) - (VERIFY_ATOL + VERIFY_RTOL * np.abs(want))
        if got.shape != want.shape or not np.all(err <= 0):   # NaN fails too
            shutil.rmtree(folder, ignore_errors=True)
            self._predictor = None
            raise EngineError(f"the exported network disagrees with the dynamic graph (max "
                              f"|diff| {np.abs(got - want).max():.3g}); not using it")

    # -- running -------------------------------------------------------------------------------
    def _run(self, x: np.ndarray, t: np.ndarray, y: Optional[np.ndarray]) -> np.ndarray:
        p = self._predictor
        feeds = {"x": x, "t": t}
        if self.num_classes is not None:
            feeds["y"] = y if y is not None else np.full_like(t, self.num_classes)
        for name in p.get_input_names():
            handle = p.get_input_handle(name)
            value = np.ascontiguousarray(feeds[name])
            handle.reshape(list(value.shape))
            handle.copy_from_cpu(value)
        p.run()
        return p.get_output_handle(p.get_output_names()[0]).copy_to_cpu()

    def __call__(self, x, t, y=None) -> paddle.Tensor:
        if y is not None and self.num_classes is None:
            raise ValueError("class labels y were given to a model built without num_classes")
        self.prepare(x.shape[1:])
        arr = lambda v: v.numpy() if isinstance(v, paddle.Tensor) else np.asarray(v)
        x, t = arr(x).astype(np.float32, copy=False), arr(t).astype(np.int64, copy=False)
        t = np.broadcast_to(t, x.shape[:1]) if t.ndim == 0 else t
        y = None if y is None else arr(y).astype(np.int64, copy=False)
        step = self.micro_batch
        outs = [self._run(x[i:i + step], t[i:i + step], None if y is None else y[i:i + step])
                for i in range(0, max(len(x), 1), step)]
        return paddle.to_tensor(outs[0] if len(outs) == 1 else np.concatenate(outs))

    @property
    def micro_batch(self) -> Optional[int]:
        """Images per runtime call: the one given, else micro_batch_for the served shape."""
        if self._micro_batch is None and self._shape is not None:
            return micro_batch_for(self._shape)
        return self._micro_batch

    @micro_batch.setter
    def micro_batch(self, value: Optional[int]) -> None:
        self._micro_batch = value

    def eval(self):
        return self

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({type(self.model).__name__}, device={self.device}, "
                f"threads={self.threads}, path={self.path})")


@contextlib.contextmanager
def _stages(title: str, show: bool):
    """One progress line, ``title: stage (elapsed)``, while an engine is being prepared.
    Yields ``stage(name)``; the line appears at the first stage and is closed at the end."""
    bar = []

    def stage(name: str) -> None:
        if not show:
            return
        if not bar:
            bar.append(tqdm(total=None, desc=title, bar_format="{desc}: {postfix} [{elapsed}]",
                            leave=True, file=sys.stderr))
        bar[0].set_postfix_str(name)
    try:
        yield stage
    finally:
        if bar:
            bar[0].set_postfix_str("done")
            bar[0].close()


def _num_steps(model) -> int:
    """Rows of a learned time table (FPN, legacy nets) so the check stays in range; else T=1000."""
    for name, layer in model.named_sublayers():
        if isinstance(layer, paddle.nn.Embedding) and "time" in name:
            return int(layer.weight.shape[0])
    return int(getattr(model, "num_steps", 1000) or 1000)


def _first_line(exc: BaseException) -> str:
    """The gist of a Paddle error: its last "SomeError: message" line (to_static and the C++
    core put a traceback first) and the user-code line it points at, if any."""
    lines = [s.strip() for s in str(exc).splitlines() if s.strip()]
    errors = [s for s in lines if re.match(r"^[A-Za-z_.]*(Error|Exception)\b.*:", s)]
    gist = errors[-1] if errors else (lines[0] if lines else "")
    where = [m.groups() for m in (re.match(r'^File "(.+)", line (\d+)', s) for s in lines) if m]
    if where:
        gist += f" at {where[-1][0]}:{where[-1][1]}"
    return f"{type(exc).__name__}: {gist[:300]}" if not errors else gist[:400]
