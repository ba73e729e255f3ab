import itertools

import numpy as np
import paddle
import pytest

from ppddpm.data import build_loader
from ppddpm.data.loader import EpochBatchSampler, epoch_permutation, flip_bits, split_key


class Probe(paddle.io.Dataset):
    """Item i is a 2x3 array that encodes i; flipping mirrors it. Logs the keys it loads."""

    def __init__(self, n):
        super().__init__()
        self.n, self.log = n, []

    def __len__(self):
        return self.n

    def __getitem__(self, key):
        i, flip = split_key(key)
        self.log.append((i, flip))
        x = np.array([[i, i + 0.25, i + 0.5]] * 2, np.float32)
        return (x[:, ::-1].copy() if flip else x), np.int64(i)


def _decode(batch):
    x, y = batch
    x = x.numpy()
    return [(int(i), bool(row[0, 0] > row[0, 2])) for i, row in zip(y.numpy(), x)]


def _stream(loader, steps):
    out = []
    for batch in loader:
        out.append(_decode(batch))
        if len(out) == steps:
            break
    return out


def test_epoch_order_is_a_pure_function_of_seed_and_epoch():
    a, b = EpochBatchSampler(23, 4, seed=7), EpochBatchSampler(23, 4, seed=7)
    assert a.epoch_batches(3) == b.epoch_batches(3)
    assert a.epoch_batches(3) != a.epoch_batches(4)
    assert EpochBatchSampler(23, 4, seed=8).epoch_batches(3) != a.epoch_batches(3)
    assert len(a) == a.steps_per_epoch == 5                     # drop_last: 23 // 4
    idx = [i for batch in EpochBatchSampler(23, 4, seed=7, drop_last=False).epoch_batches(2)
           for i, _ in batch]
    assert sorted(idx) == list(range(23))                       # each item exactly once
    np.testing.assert_array_equal(epoch_permutation(7, 2, 23), idx)


def test_flip_depends_only_on_seed_epoch_index():
    flips = flip_bits(5, 1, 30)
    assert 5 < flips.sum() < 25
    for bs in (3, 7):
        for batch in EpochBatchSampler(30, bs, seed=5, start_step=30 // bs).epoch_batches(1):
            assert all(f == flips[i] for i, f in batch)


def test_loader_values_match_sampler_and_epochs_advance():
    ds = Probe(10)
    loader = build_loader(ds, 4, num_workers=0, seed=1)
    assert len(loader) == 2
    first, second = [_decode(b) for b in loader], [_decode(b) for b in loader]
    sampler = EpochBatchSampler(10, 4, seed=1)
    assert first == sampler.epoch_batches(0) and second == sampler.epoch_batches(1)
    x, y = next(iter(build_loader(ds, 4, seed=1)))
    assert x.dtype == paddle.float32 and list(x.shape) == [4, 2, 3] and y.dtype == paddle.int64


def test_start_step_resumes_mid_epoch_without_loading_skipped_items():
    full = _stream(build_loader(Probe(10), 3, seed=4, infinite=True), 9)  # 3 per epoch
    for k in (1, 3, 5):
        ds = Probe(10)
        rest = _stream(build_loader(ds, 3, seed=4, start_step=k, infinite=True), 9 - k)
        assert rest == full[k:]
        # loading starts at batch k: the skipped batches were never loaded
        # (the loader's prefetch thread may have loaded a few batches past the end)
        assert ds.log[:3 * (9 - k)] == [key for batch in full[k:] for key in batch]
    # finite mode: a resumed loader finishes the epoch, then continues with the next one
    loader = build_loader(Probe(10), 3, seed=4, start_step=4)
    assert len(loader) == 2
    assert [_decode(b) for b in loader] == full[4:6]
    assert [_decode(b) for b in loader] == full[6:9]


def test_worker_processes_give_the_same_batches_and_flips():
    ref = _stream(build_loader(Probe(12), 4, num_workers=0, seed=9, infinite=True), 6)
    got = _stream(build_loader(Probe(12), 4, num_workers=2, seed=9, infinite=True), 6)
    assert got == ref
    assert any(f for batch in ref for _, f in batch) and not all(
        f for batch in ref for _, f in batch)


def test_ranks_split_the_single_process_global_batch():
    single = EpochBatchSampler(22, 6, seed=2).epoch_batches(0)
    ranks = [EpochBatchSampler(22, 3, seed=2, num_replicas=2, rank=r).epoch_batches(0)
             for r in (0, 1)]
    assert len(single) == len(ranks[0]) == len(ranks[1]) == 3
    for j in range(3):
        assert ranks[0][j] + ranks[1][j] == single[j]
    # without drop_last the padded tail is shared evenly and nothing is lost
    tail = [EpochBatchSampler(22, 3, seed=2, drop_last=False, num_replicas=2, rank=r)
            .epoch_batches(0) for r in (0, 1)]
    seen = {i for r in tail for batch in r for i, _ in batch}
    assert seen == set(range(22)) and len(tail[0][-1]) == len(tail[1][-1])


def test_sampler_argument_errors():
    with pytest.raises(ValueError, match="smaller than one global batch"):
        EpochBatchSampler(5, 8)
    with pytest.raises(ValueError):
        EpochBatchSampler(5, 2, seed=-1)
    assert list(itertools.islice(iter(EpochBatchSampler(4, 2, shuffle=False)), 2)) == [
        [(0, bool(flip_bits(0, 0, 4)[0])), (1, bool(flip_bits(0, 0, 4)[1]))],
        [(2, bool(flip_bits(0, 0, 4)[2])), (3, bool(flip_bits(0, 0, 4)[3]))]]
