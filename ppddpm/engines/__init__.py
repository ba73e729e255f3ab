"""Sampling engines: the network exported once and run by ONNX Runtime or the Paddle
Inference predictor, behind the network's own call ``engine(x, t, y=None)``."""
from .factory import ENGINE_KINDS, auto_kinds, engine_class, make_engine, snapshot_engine
from .predictor import EngineError, InferenceModel

__all__ = ["ENGINE_KINDS", "EngineError", "InferenceModel", "auto_kinds", "engine_class",
           "make_engine", "snapshot_engine"]
