"""Data sets held in memory skip the DataLoader (ppddpm.data.loader.MemoryLoader): the batches,
flips, labels and order are the same as the per-item path's, for arrays (CIFAR-10, MNIST) and
for an image folder decoded once; a folder with a file that does not decode keeps the
per-item path (which substitutes the next image, with a warning)."""
import warnings

import numpy as np
import pytest

from helpers_data import make_fake_cifar10, make_fake_image_tree, write_png_with_bad_pixel_data
from ppddpm.data import build_loader
from ppddpm.data.cifar10 import Cifar10Dataset
from ppddpm.data.folders import ImageFolderDataset
from ppddpm.data.loader import MemoryLoader, SafeLoader, memory_images


def stream(loader, steps):
    out = []
    for x, y in loader:
        out.append((x.numpy(), y.numpy()))
        if len(out) == steps:
            return out
    return out


def assert_same_batches(dataset, batch, steps, **kw):
    fast = build_loader(dataset, batch, seed=3, infinite=True, **kw)
    slow = build_loader(dataset, batch, seed=3, infinite=True, in_memory=False, **kw)
    assert isinstance(fast, MemoryLoader) and isinstance(slow, SafeLoader)
    a, b = stream(fast, steps), stream(slow, steps)
    assert len(a) == steps
    for (xa, ya), (xb, yb) in zip(a, b):
        assert xa.dtype == xb.dtype == np.float32 and ya.dtype == yb.dtype == np.int64
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    return a


def test_cifar10_arrays_give_the_per_item_batches(tmp_path):
    make_fake_cifar10(str(tmp_path), 8)    # 40 images over 5 training batch files
    ds = Cifar10Dataset(str(tmp_path), random_flip=True, download=False)
    assert_same_batches(ds, 6, 14, start_step=2)    # past an epoch of 6, from batch 2


def test_image_folder_is_decoded_once_and_gives_the_per_item_batches(tmp_path):
    tree = make_fake_image_tree(str(tmp_path / "img"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")    # the one unreadable file of the tree is skipped
        ds = ImageFolderDataset(tree["root"], 16, random_flip=True, class_level=2)
    images, labels = memory_images(ds)
    assert images.shape == (len(ds), 3, 16, 16) and images.dtype == np.uint8
    np.testing.assert_array_equal(labels, ds.labels)
    assert_same_batches(ds, 3, 5, num_replicas=2, rank=1)


def test_folders_too_large_or_damaged_keep_the_per_item_path(tmp_path):
    tree = make_fake_image_tree(str(tmp_path / "img"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = ImageFolderDataset(tree["root"], 16, class_level=2)
    assert memory_images(ds, max_bytes=len(ds) * 3 * 16 * 16 - 1) is None
    write_png_with_bad_pixel_data(str(tmp_path / "img" / "train" / "male" / "003.png"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        damaged = ImageFolderDataset(tree["root"], 16, class_level=2)
    assert memory_images(damaged) is None
    assert isinstance(build_loader(damaged, 2, seed=0), SafeLoader)


@pytest.mark.parametrize("flip", [False, True])
def test_memory_loader_flips_exactly_as_the_keys_say(flip):
    class Arrays:
        random_flip = flip
        images = np.arange(4 * 1 * 2 * 3, dtype=np.uint8).reshape(4, 1, 2, 3)
        labels = np.arange(4)

        def __len__(self):
            return 4
    loader = build_loader(Arrays(), 4, seed=0, shuffle=False)
    x, y = next(iter(loader))
    keys = loader.batch_sampler.epoch_batches(0)[0]
    for (i, f), img, label in zip(keys, x.numpy(), y.numpy()):
        want = Arrays.images[i][:, :, ::-1] if (flip and f) else Arrays.images[i]
        np.testing.assert_array_equal(img, want.astype(np.float32) / np.float32(127.5) - 1)
        assert label == i
