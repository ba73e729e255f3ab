"""Training checkpoints: names, listing, pruning, RNG state (written and read by io/weights.py).

File names follow the original reproduction (see contract.md):
  training:  {ckpt_dir}/{prefix}_ckpt_iter_{N}.pdparam        (N = iterations done)
  inference: {ckpt_dir}/ddpm_{prefix}_i{N}_ema.pdparam        (non-EMA twin: no "_ema")
Saves go to a hidden temp file in the same folder (".{name}.XXXX.tmp"), are
fsynced and then os.replace'd onto the target, so a process killed mid-save
leaves the previous file untouched; listings ignore the temp files.
"""
from __future__ import annotations

import os
import random
import re
from typing import List, Optional, Tuple

import numpy as np
import paddle

from ..io.files import stale_temp_files


def train_ckpt_path(ckpt_dir: str, prefix: str, iters: int) -> str:
    return os.path.join(ckpt_dir, f"{prefix}_ckpt_iter_{int(iters)}.pdparam")


def inference_path(ckpt_dir: str, prefix: str, iters: int, ema: bool = True) -> str:
    suffix = "_ema" if ema else ""
    return os.path.join(ckpt_dir, f"ddpm_{prefix}_i{int(iters)}{suffix}.pdparam")


def list_checkpoints(ckpt_dir: str, prefix: str) -> List[Tuple[int, str]]:
    """[(iters, path), ...] of the training checkpoints of ``prefix``, by iteration."""
    pattern = re.compile(rf"^{re.escape(prefix)}_ckpt_iter_(\d+)\.pdparam$")
    try:
        names = os.listdir(ckpt_dir)
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for name in names:
        m = pattern.match(name)
        if m and os.path.isfile(os.path.join(ckpt_dir, name)):
            found.append((int(m.group(1)), os.path.join(ckpt_dir, name)))
    return sorted(found)


def is_training_output(name: str, prefix: str) -> bool:
    """Whether a file name is a training checkpoint or inference file of ``prefix``."""
    p = re.escape(prefix)
    return re.match(rf"^(?:{p}_ckpt_iter_\d+|ddpm_{p}_i\d+(?:_ema)?)\.pdparam$", name) is not None


def remove_stale_temps(ckpt_dir: str, prefix: str) -> List[str]:
    """Delete the temp files that killed writes of ``prefix``'s checkpoints and inference
    files left in ``ckpt_dir`` (call it only while holding the folder's run lock)."""
    removed = []
    for path in stale_temp_files(ckpt_dir, lambda target: is_training_output(target, prefix)):
        try:
            os.remove(path)
            removed.append(path)
        except FileNotFoundError:
            pass
    return removed


def latest_checkpoint(ckpt_dir: str, prefix: str) -> Optional[str]:
    found = list_checkpoints(ckpt_dir, prefix)
    return found[-1][1] if found else None


def prune_checkpoints(ckpt_dir: str, prefix: str, keep_last: int) -> List[str]:
    """Delete all but the newest ``keep_last`` training checkpoints (<= 0 keeps all)."""
    if keep_last is None or keep_last <= 0:
        return []
    doomed = [p for _, p in list_checkpoints(ckpt_dir, prefix)[:-keep_last]]
    for p in doomed:
        os.remove(p)
    return doomed


def _cuda_available() -> bool:
    return paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0


def get_rng_state() -> dict:
    """States of python ``random``, numpy's global RNG and paddle's generators."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "paddle": paddle.get_rng_state(device="cpu")}
    if _cuda_available():
        state["paddle_cuda"] = paddle.get_cuda_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`get_rng_state` captured (missing entries are left alone)."""
    if "python" in state:
        py = state["python"]  # a pickle round trip may turn the inner tuple into a list
        random.setstate((py[0], tuple(py[1]), py[2]))
    if "numpy" in state:
        np.random.set_state(tuple(state["numpy"]))
    if "paddle" in state:
        paddle.set_rng_state(state["paddle"], device="cpu")
    if "paddle_cuda" in state and _cuda_available():
        paddle.set_cuda_rng_state(state["paddle_cuda"])


def find_resume_checkpoint(cfg, path: Optional[str]) -> Optional[str]:
    """``path`` if given, else the latest checkpoint of ``train.ckpt_prefix`` in ``train.ckpt_dir``."""
    return path or latest_checkpoint(cfg.train.ckpt_dir, cfg.train.ckpt_prefix)
