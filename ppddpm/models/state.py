"""Strict weight loading: every tensor must be present, expected, and of the right shape.

``paddle.nn.Layer.set_state_dict`` warns about (and skips) missing, unexpected or
mis-shaped entries; a checkpoint for the wrong architecture would then "load" and
sample noise. Here any mismatch is a CheckpointError that lists the offenders.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import paddle

from ..errors import CheckpointError

MAX_LISTED = 12   # offenders listed per kind before "... and N more"


def tensor_shape(value) -> Tuple[int, ...]:
    """Shape of a paddle tensor, numpy array or anything numpy can read."""
    shape = getattr(value, "shape", None)
    if shape is None:
        shape = np.shape(value)
    return tuple(int(s) for s in shape)


def as_numpy(value) -> np.ndarray:
    """A numpy view/copy of a paddle tensor (paddle.load returns tensors) or array-like."""
    return value.numpy() if isinstance(value, paddle.Tensor) else np.asarray(value)


def describe_model(model) -> str:
    """A one-line description of the architecture a model was built for."""
    cfg = getattr(model, "config", None)
    if cfg is not None and dataclasses.is_dataclass(cfg):
        fields = ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(cfg).items())
        return f"{type(model).__name__} ({fields})"
    return type(model).__name__


def _listing(title: str, rows: Sequence[str]) -> List[str]:
    if not rows:
        return []
    lines = [f"  {title} ({len(rows)}):"] + [f"    {r}" for r in rows[:MAX_LISTED]]
    if len(rows) > MAX_LISTED:
        lines.append(f"    ... and {len(rows) - MAX_LISTED} more")
    return lines


def state_mismatches(expected: Mapping[str, Sequence[int]], found: Mapping[str, object]
                     ) -> Tuple[List[str], List[str], List[str]]:
    """(missing, unexpected, wrong-shape) descriptions, in the expected key order."""
    missing = [f"{k} {list(s)}" for k, s in expected.items() if k not in found]
    unexpected = [f"{k} {list(tensor_shape(v))}" for k, v in found.items() if k not in expected]
    wrong = []
    for k, s in expected.items():
        if k in found and tensor_shape(found[k]) != tuple(s):
            wrong.append(f"{k}: model expects {list(s)}, checkpoint has "
                         f"{list(tensor_shape(found[k]))}")
    return missing, unexpected, wrong


def check_state(model, state_dict: Mapping[str, object], source: str,
                expected: Optional[str] = None) -> None:
    """Raise CheckpointError unless ``state_dict`` matches ``model`` name for name and shape."""
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(f"{source}: the weights are a {type(state_dict).__name__}, "
                              "not a dict of named tensors")
    want = {k: tensor_shape(v) for k, v in model.state_dict().items()}
    missing, unexpected, wrong = state_mismatches(want, state_dict)
    if missing or unexpected or wrong:
        lines = [f"{source} does not match the model it is loaded into: "
                 f"{len(missing)} missing, {len(unexpected)} unexpected and {len(wrong)} "
                 f"mis-shaped tensors (of {len(want)} expected).",
                 "  expected architecture: "
                 + (f"{expected}: {describe_model(model)}" if expected else describe_model(model))]
        lines += _listing("shape mismatches", wrong)
        lines += _listing("missing from the checkpoint", missing)
        lines += _listing("unexpected in the checkpoint", unexpected)
        lines.append("  Check that the file was written for this architecture/config "
                     "(or convert it with `python -m ppddpm.convert`).")
        raise CheckpointError("\n".join(lines))


def load_state_strict(model, state_dict: Mapping[str, object], source: str,
                      expected: Optional[str] = None):
    """Load ``state_dict`` (numpy arrays or paddle tensors) into ``model`` or raise.

    ``source`` names the file (or other origin) in the error; ``expected`` optionally
    describes the config/arch that was expected (default: the model's own config).
    Floating values are cast to the parameter's dtype (e.g. float64 numpy to float32).
    Returns the model.
    """
    check_state(model, state_dict, source, expected)
    targets: Dict[str, paddle.Tensor] = model.state_dict()
    for name, param in targets.items():
        value = as_numpy(state_dict[name])
        try:
            param.set_value(value.astype(_np_dtype(param), copy=False))
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"{source}: cannot load tensor {name} "
                                  f"({value.dtype} {list(value.shape)}): {exc}") from None
    return model


def _np_dtype(param) -> np.dtype:
    return np.dtype(str(param.dtype).replace("paddle.", ""))
