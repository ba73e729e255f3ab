"""Reproducible data order for exact resume.

The order of epoch e is a pure function of (seed, e): a permutation drawn from
``np.random.default_rng([seed, e])``. Random flips are a pure function of
(seed, e, index): ``flip_bits(seed, e, n)[index]``. The batch sampler hands the
data set keys ``(index, flip)`` instead of bare indices, so the decision is made
in the main process and worker processes (which fork copies of any RNG) cannot
change it. Data sets still accept a bare int (then they use their own RNG).

Global step s lives in epoch ``s // steps_per_epoch`` at batch ``s % steps_per_epoch``;
``build_loader(..., start_step=s)`` starts there by slicing index lists, without
loading the skipped images. With W distributed ranks, global batch j is
``perm[j*B*W:(j+1)*B*W]`` and rank r takes its r-th slice of B: the ranks together
see exactly what one process with batch B*W would see.
"""
from __future__ import annotations

from typing import Iterator, List, Optional, Tuple

import numpy as np
import paddle

from ..config import ConfigError

_FLIP_STREAM = 0x0F11B  # separates the flip stream from the permutation stream


def epoch_permutation(seed: int, epoch: int, n: int, shuffle: bool = True) -> np.ndarray:
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n).astype(np.int64)


def flip_bits(seed: int, epoch: int, n: int) -> np.ndarray:
    """bool [n]: whether dataset item i is mirrored in this epoch."""
    return np.random.default_rng([int(seed), int(epoch), _FLIP_STREAM]).random(n) < 0.5


def split_key(key) -> Tuple[int, Optional[bool]]:
    """A data set key is an int index or an (index, flip) pair from the sampler."""
    if isinstance(key, (tuple, list)):
        return int(key[0]), bool(key[1])
    return int(key), None


def to_model_input(img_chw_uint8: np.ndarray, flip: Optional[bool], random_flip: bool,
                   rng: np.random.Generator) -> np.ndarray:
    """uint8 CHW -> float32 in [-1, 1] (v / 127.5 - 1), mirrored when the sampler's key says
    so (or, for bare int keys, by the data set's own ``rng``)."""
    if random_flip:
        if flip is None:
            flip = bool(rng.random() < 0.5)
        if flip:
            img_chw_uint8 = img_chw_uint8[:, :, ::-1]
    return img_chw_uint8.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


class EpochBatchSampler:
    """Batches of ``(index, flip)`` keys; epochs advance after each full pass.

    Iterating yields the rest of the current epoch (from ``start_step``'s offset the
    first time), then moves to the next epoch, so ``for batch in loader`` repeated
    walks epoch after epoch. With ``infinite=True`` one iteration never ends.
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, shuffle: bool = True,
                 drop_last: bool = True, start_step: int = 0, num_replicas: int = 1,
                 rank: int = 0, infinite: bool = False):
        if batch_size < 1 or n < 1:
            raise ValueError(f"need batch_size >= 1 and a non-empty data set (n={n})")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.shuffle, self.drop_last, self.infinite = shuffle, drop_last, infinite
        self.num_replicas, self.rank = num_replicas, rank
        glob = batch_size * num_replicas
        if drop_last:
            self.steps_per_epoch = n // glob
            if self.steps_per_epoch == 0:
                raise ConfigError(f"the data set has {n} items, fewer than one global batch "
                                  f"({batch_size} x {num_replicas} rank(s)); lower --batchsize "
                                  "or add data (smaller than one global batch with drop_last)")
        else:
            self.steps_per_epoch = -(-n // glob)
        self.epoch, self.offset = divmod(int(start_step), self.steps_per_epoch)

    def set_epoch(self, epoch: int, offset: int = 0) -> None:
        self.epoch, self.offset = int(epoch), int(offset)

    def epoch_batches(self, epoch: int) -> List[List[Tuple[int, bool]]]:
        """All of this rank's batches of ``epoch`` (a pure function of seed, epoch)."""
        perm = epoch_permutation(self.seed, epoch, self.n, self.shuffle)
        flips = flip_bits(self.seed, epoch, self.n)
        B, W = self.batch_size, self.num_replicas
        batches = []
        for j in range(self.steps_per_epoch):
            chunk = perm[j * B * W:(j + 1) * B * W]
            if len(chunk) < B * W:  # last, partial global batch: pad by wrapping, split evenly
                per = -(-len(chunk) // W)
                chunk = np.concatenate([chunk, perm[:per * W - len(chunk)]])
                mine = chunk[self.rank * per:(self.rank + 1) * per]
            else:
                mine = chunk[self.rank * B:(self.rank + 1) * B]
            batches.append([(int(i), bool(flips[i])) for i in mine])
        return batches

    def __iter__(self) -> Iterator[List[Tuple[int, bool]]]:
        while True:
            epoch, offset = self.epoch, self.offset
            for batch in self.epoch_batches(epoch)[offset:]:
                yield batch
            self.epoch, self.offset = epoch + 1, 0
            if not self.infinite:
                return

    def __len__(self) -> int:
        """Batches the next (finite) pass yields."""
        return self.steps_per_epoch - self.offset


def _dist_world() -> Tuple[int, int]:
    try:
        return paddle.distributed.get_world_size(), paddle.distributed.get_rank()
    except Exception:
        return 1, 0


def build_loader(dataset, batch_size: int, num_workers: int = 0, shuffle: bool = True,
                 drop_last: bool = True, seed: int = 0, start_step: int = 0,
                 infinite: bool = False, num_replicas: Optional[int] = None,
                 rank: Optional[int] = None) -> paddle.io.DataLoader:
    """A DataLoader whose order is reproducible from (seed, epoch, start_step).

    ``batch_size`` is per rank; ranks default to paddle.distributed's world.
    The sampler is ``loader.batch_sampler`` (an EpochBatchSampler).
    """
    world, me = _dist_world()
    sampler = EpochBatchSampler(len(dataset), batch_size, seed=seed, shuffle=shuffle,
                                drop_last=drop_last, start_step=start_step,
                                num_replicas=num_replicas or world,
                                rank=me if rank is None else rank, infinite=infinite)
    return paddle.io.DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers,
                                use_shared_memory=num_workers > 0)
