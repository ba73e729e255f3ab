"""The one factory of sampling engines: ``make_engine(model, kind)`` over the registry of kinds."""
from __future__ import annotations

import contextlib
import sys
import tempfile
from typing import List, Optional

import paddle

from .onnx import OnnxModel, available
from .predictor import EngineError, InferenceModel, on_gpu

# --engine: the runtimes, the dynamic graph, and auto (the fastest that works here).
ENGINE_KINDS = ("auto", "onnxruntime", "inference", "dygraph")


def engine_class(kind: str):
    """The engine class of a runtime name ("onnxruntime" or "inference")."""
    if kind == "onnxruntime":
        return OnnxModel
    return InferenceModel


def auto_kinds() -> List[str]:
    """The runtimes ``auto`` tries on the CPU, fastest first: ONNX Runtime when the onnx extra
    is installed, then the predictor (benchmarks/RESULTS.md)."""
    return (["onnxruntime"] if available() else []) + ["inference"]


def make_engine(model: paddle.nn.Layer, kind: str = "auto", image_shape=None,
                cache_dir: Optional[str] = None, threads: Optional[int] = None,
                notice=None, keep_model: bool = True, progress: Optional[bool] = None):
    """The network wrapped for sampling.

    kind "onnxruntime" / "inference": that runtime, or EngineError; "dygraph": ``model``
    itself (eval mode); "auto": the first of ``auto_kinds()`` whose export works (the
    predictor on a GPU), else ``model``, with a one-line notice for each fallback
    (``notice(message)``, default: print to stderr). keep_model, progress: see InferenceModel.
    """
    if kind not in ENGINE_KINDS:
        raise EngineError(f"unknown engine {kind!r}; choose one of {list(ENGINE_KINDS)}")
    model.eval()
    if kind == "dygraph":
        return model
    say = notice or (lambda m: print(m, file=sys.stderr, flush=True))
    kinds = [kind] if kind != "auto" else (["inference"] if on_gpu() else auto_kinds())
    failed = None
    for runtime in kinds:
        try:
            net = engine_class(runtime)(model, image_shape, cache_dir=cache_dir, threads=threads,
                                        keep_model=keep_model, progress=progress)
        except EngineError as exc:
            if kind != "auto":
                raise EngineError(f"{exc}. Use --engine dygraph to sample with the dynamic graph.") from None
            failed = failed or exc   # one notice, naming the first failure
            continue
        if failed is not None:
            say(f"notice: sampling with {net.title}: {failed}")
        return net
    say(f"notice: sampling with the dynamic graph (slower): {failed}")
    return model


@contextlib.contextmanager
def snapshot_engine(model: paddle.nn.Layer, image_shape, notice=None):
    """The predictor for weights that keep changing (the EMA network sampled during training),
    exported into a temporary folder that is removed afterwards, so no snapshot piles up in the
    cache. The dynamic graph on a GPU, or, with a notice, when the export fails."""
    if on_gpu():
        yield model
        return
    with tempfile.TemporaryDirectory(prefix="ppddpm-snapshot-") as folder:
        yield make_engine(model, "auto", image_shape, cache_dir=folder, notice=notice)
