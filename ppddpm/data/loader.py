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

Errors while loading: Paddle's DataLoader runs ``dataset[key]`` in a thread
(num_workers 0) or in worker processes. An exception there kills the thread
without waking the main process, which then waits forever (num_workers 0), or
reaches it as a SystemError after a traceback printed by the loader thread.
So no exception may leave the loader: ``_Guarded`` catches it and collates a
small error batch that names the failing key, and ``SafeLoader`` turns that
batch into a one-line ``DatasetError`` in the main process (loading the item
there once more to quote its own message).

Data sets held in memory (MNIST, CIFAR-10, and image folders small enough to decode once:
``memory_images``) skip the DataLoader: ``MemoryLoader`` gathers each batch from one uint8
array with the same keys, flips and arithmetic as ``dataset[key]``, so the batches are
identical, without a decode per item and epoch or worker processes competing for the cores.
"""
from __future__ import annotations

import warnings
from typing import Iterator, List, Optional, Tuple

import numpy as np
import paddle
from paddle.io.dataloader.collate import default_collate_fn
from tqdm import tqdm

from ..config import ConfigError
from ..errors import DatasetError

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


_OK, _ITEM_FAILED, _COLLATE_FAILED = 0, 1, 2


class _Guarded(paddle.io.Dataset):
    """``dataset`` whose item errors become values: (item, None) or (None, key)."""

    def __init__(self, dataset):
        super().__init__()
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        try:
            return self.dataset[key], None
        except Exception:
            return None, key


def _collate(pairs):
    """A batch ``[*fields, status]``; status int64 [3] = (kind, index, flip). On an error
    the batch is ``[zeros(1), status]``, whose shape no training step accepts."""
    for item, key in pairs:
        if item is None:
            i, flip = split_key(key)
            return [np.zeros(1, np.float32),
                    np.array([_ITEM_FAILED, i, -1 if flip is None else int(flip)], np.int64)]
    try:
        fields = default_collate_fn([item for item, _ in pairs])
    except Exception:
        return [np.zeros(1, np.float32), np.array([_COLLATE_FAILED, -1, -1], np.int64)]
    return list(fields) + [np.array([_OK, -1, -1], np.int64)]


def _load_error(dataset, status) -> DatasetError:
    kind, index, flip = (int(v) for v in np.asarray(status).reshape(-1)[:3])
    if kind == _COLLATE_FAILED:
        return DatasetError("the items of one batch differ in shape or type; every item of "
                            "a data set must be a (C x H x W image, label) pair of one size")
    key = index if flip < 0 else (index, bool(flip))
    try:
        with warnings.catch_warnings():  # the loader already warned about each file
            warnings.simplefilter("ignore")
            dataset[key]
        why = "it loads in the main process, so the failure came from the worker"
    except Exception as exc:
        why = f"{type(exc).__name__}: {exc}"
    why = (why.splitlines() or [""])[0]
    return DatasetError(f"loading item {index} of the data set failed ({why})")


class SafeLoader:
    """A Paddle DataLoader whose item errors reach the caller as one ``DatasetError``
    (see the module docstring). Iterates like the DataLoader: lists of tensors."""

    def __init__(self, dataset, batch_sampler: EpochBatchSampler, num_workers: int):
        self.dataset, self.batch_sampler = dataset, batch_sampler
        self._loader = paddle.io.DataLoader(_Guarded(dataset), batch_sampler=batch_sampler,
                                            num_workers=num_workers, collate_fn=_collate,
                                            use_shared_memory=num_workers > 0)

    def __len__(self) -> int:
        return len(self._loader)

    def __iter__(self):
        batches = None
        while True:
            try:
                # iter() too: a worker that dies at once is reported (through Paddle's SIGCHLD
                # handler) while the iterator is still starting its thread
                batches = iter(self._loader) if batches is None else batches
                batch = next(batches)
            except StopIteration:
                return
            except (RuntimeError, SystemError) as exc:  # e.g. a worker killed by the system
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise DatasetError(f"the data loader failed ({first}); if a worker process "
                                   "died (out of memory?), try fewer --num_workers") from None
            status = batch[-1].numpy()
            if int(status[0]) != _OK:
                raise _load_error(self.dataset, status)
            yield batch[:-1]


MEMORY_BYTES = 256 * 2 ** 20   # image folders up to this size (decoded, uint8) are held in memory


def memory_images(dataset, max_bytes: int = MEMORY_BYTES) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """(uint8 images [N, C, H, W], int64 labels [N]) of a data set that is, or can be, held in
    memory; None otherwise. A data set with an ``images`` array is used as it is; one with
    ``load(i)`` (an image folder) is decoded once when its pixels fit in ``max_bytes`` and
    every file decodes (a damaged file keeps the per-item path, which substitutes the next
    image with a warning)."""
    labels = getattr(dataset, "labels", None)
    if labels is None or not hasattr(dataset, "random_flip"):
        return None
    images = getattr(dataset, "images", None)
    if isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 4:
        return images, np.asarray(labels, np.int64)
    load, n = getattr(dataset, "load", None), len(dataset)
    channels, size = getattr(dataset, "channels", 0), getattr(dataset, "image_size", 0)
    if load is None or not n or n * channels * size * size > max_bytes:
        return None
    out = np.empty((n, channels, size, size), np.uint8)
    for i in tqdm(range(n), desc="loading images into memory", unit="img", disable=None, leave=False):
        try:
            out[i] = load(i)
        except Exception:  # PIL raises many types; the per-item path reports the file
            return None
    return out, np.asarray(labels, np.int64)


class MemoryLoader:
    """Batches ``[images, labels]`` gathered from arrays in memory, in the order of an
    EpochBatchSampler: each image as ``to_model_input`` makes it (flipped when the key says so)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_sampler: EpochBatchSampler,
                 random_flip: bool):
        self.images, self.labels = images, labels
        self.batch_sampler, self.random_flip = batch_sampler, bool(random_flip)

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self):
        for keys in self.batch_sampler:
            index = np.fromiter((k[0] for k in keys), np.int64, len(keys))
            x = self.images[index]
            if self.random_flip:
                flip = np.fromiter((k[1] for k in keys), bool, len(keys))
                x[flip] = x[flip][..., ::-1]
            x = x.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
            yield [paddle.to_tensor(x), paddle.to_tensor(self.labels[index])]


def build_loader(dataset, batch_size: int, num_workers: int = 0, shuffle: bool = True,
                 drop_last: bool = True, seed: int = 0, start_step: int = 0,
                 infinite: bool = False, num_replicas: Optional[int] = None,
                 rank: Optional[int] = None, in_memory: bool = True):
    """A loader whose order is reproducible from (seed, epoch, start_step): a MemoryLoader
    for data in memory (``in_memory`` and ``memory_images``; no worker processes), else a
    SafeLoader over Paddle's DataLoader with ``num_workers``.

    ``batch_size`` is per rank; ranks default to paddle.distributed's world.
    The sampler is ``loader.batch_sampler`` (an EpochBatchSampler).
    """
    world, me = _dist_world()
    sampler = EpochBatchSampler(len(dataset), batch_size, seed=seed, shuffle=shuffle,
                                drop_last=drop_last, start_step=start_step,
                                num_replicas=num_replicas or world,
                                rank=me if rank is None else rank, infinite=infinite)
    arrays = memory_images(dataset) if in_memory else None
    if arrays is not None:
        return MemoryLoader(*arrays, sampler, dataset.random_flip)
    return SafeLoader(dataset, sampler, num_workers)
