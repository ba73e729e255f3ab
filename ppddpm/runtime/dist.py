"""paddle.distributed helpers: start-up, rank queries, barriers, gathering samples.

Launch with ``python -m paddle.distributed.launch --gpus 0,1,2,3 run_cifar10.py …``
(``--nnodes``/``--master`` across machines; ``--nproc_per_node 2`` on the CPU with gloo),
or in-process with ``paddle.distributed.spawn``. One process needs nothing of this.
"""
from __future__ import annotations

import os
from typing import Tuple

import numpy as np
import paddle
import paddle.distributed as dist

_started = False


def launched_world_size() -> int:
    """World size announced by paddle.distributed.launch/spawn through the environment."""
    return int(os.environ.get("PADDLE_TRAINERS_NUM", "1"))


def local_world_size() -> int:
    """Processes started on this machine (launch sets PADDLE_LOCAL_SIZE; spawn runs all
    ranks on one machine)."""
    return int(os.environ.get("PADDLE_LOCAL_SIZE") or launched_world_size())


def init_distributed() -> Tuple[int, int]:
    """Join the process group when started by a launcher; returns (world size, rank)."""
    global _started
    if launched_world_size() > 1 and not _started:
        if not dist.is_initialized():
            dist.init_parallel_env()
        _started = True
    return world()


def world() -> Tuple[int, int]:
    """(world size, rank); (1, 0) outside a process group."""
    if launched_world_size() <= 1 and not (dist.is_available() and dist.is_initialized()):
        return 1, 0
    return dist.get_world_size(), dist.get_rank()


def is_main() -> bool:
    return world()[1] == 0


def barrier() -> None:
    if world()[0] > 1:
        dist.barrier()


def mean_over_ranks(value: float) -> float:
    """The mean of a scalar over all ranks (the global-batch loss)."""
    size = world()[0]
    if size == 1:
        return value
    t = paddle.to_tensor(value, dtype="float64")
    dist.all_reduce(t)
    return float(t) / size


def shard(n: int) -> Tuple[int, int]:
    """This rank's contiguous share [start, stop) of n items."""
    size, rank = world()
    per = -(-n // size)
    return min(rank * per, n), min((rank + 1) * per, n)


def gather_to_main(images: np.ndarray, n_total: int) -> np.ndarray:
    """Concatenate every rank's contiguous share (in rank order) of uint8 NHWC images.

    All ranks must call it; rank 0 gets the n_total images, the others an empty array.
    """
    size, rank = world()
    if size == 1:
        return images
    per = -(-n_total // size)
    padded = np.zeros((per,) + images.shape[1:], dtype=np.uint8)
    padded[:len(images)] = images
    parts = []
    dist.all_gather(parts, paddle.to_tensor(padded))
    if rank != 0:
        return images[:0]
    full = np.concatenate([p.numpy() for p in parts])
    return full[:n_total]


def sum_over_ranks(values) -> np.ndarray:
    """Element-wise sums over all ranks of a few numbers, in one all-reduce (float64)."""
    values = np.asarray(values, dtype=np.float64)
    if world()[0] == 1:
        return values
    t = paddle.to_tensor(values)
    dist.all_reduce(t)
    return t.numpy()


def max_over_ranks(value: int) -> int:
    """The largest of an integer over all ranks (e.g. a signal number, 0 for none)."""
    if world()[0] == 1:
        return int(value)
    t = paddle.to_tensor([int(value)], dtype="int64")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.numpy()[0])
