"""MNIST and Fashion-MNIST from generated files in the official idx-gz format."""
import gzip
import os
import pathlib
import shutil

import numpy as np
import pytest

from helpers_data import idx_bytes, make_fake_mnist
from ppddpm.config import ConfigError, DataConfig
from ppddpm.data import build_dataset
from ppddpm.data import mnist as mn
from ppddpm.data.mnist import MnistDataset, parse_idx
from ppddpm.errors import DatasetError

TRAIN = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    root = tmp_path_factory.mktemp("mnist")
    return dict(make_fake_mnist(str(root)), root=str(root))


def test_idx_header_is_read_as_the_format_says():
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = b"\x00\x00\x08\x03" + b"\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00\x04" + arr.tobytes()
    assert idx_bytes(arr) == raw                       # the test helper writes the real format
    np.testing.assert_array_equal(parse_idx(raw, 3, "x"), arr)
    with pytest.raises(ValueError, match="idx header"):
        parse_idx(b"\x00\x00\x0d\x03" + raw[4:], 3, "x")  # 0x0d = float, not ubyte
    with pytest.raises(ValueError, match="holds 23"):
        parse_idx(raw[:-1], 3, "x")


def test_items_classes_and_declared_shape(fake):
    ds = MnistDataset(fake["root"], random_flip=False, download=False)
    assert (ds.channels, ds.image_size) == (1, 28) and ds.class_names == [str(d) for d in range(10)]
    assert len(ds) == 16
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape == (1, 28, 28) and x.dtype == np.float32 and y.dtype == np.int64
        np.testing.assert_array_equal(x[0], fake["images"][i].astype(np.float32) / np.float32(127.5) - 1)
        assert int(y) == fake["labels"][i]
    test = MnistDataset(fake["root"], train=False, download=False)
    np.testing.assert_array_equal(test.labels, fake["test_labels"])
    fashion = build_dataset(DataConfig(dataset="fashion_mnist", data_dir=fake["root"], image_size=28,
                                       download=False))
    assert fashion.class_names[0] == "T-shirt/top" and fashion.class_names[9] == "Ankle boot"
    assert len(fashion.class_names) == 10
    with pytest.raises(ConfigError, match="28x28"):
        build_dataset(DataConfig(dataset="mnist", data_dir=fake["root"], image_size=32))


def test_torchvision_layout_and_uncompressed_files(fake, tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in TRAIN:
        with gzip.open(os.path.join(fake["root"], name)) as src:
            (raw / name[:-3]).write_bytes(src.read())          # uncompressed, as torchvision leaves them
    ds = MnistDataset(str(tmp_path), download=False)
    np.testing.assert_array_equal(ds.images[:, 0], fake["images"])


def test_missing_download_off_and_corrupt_files(fake, tmp_path):
    with pytest.raises(DatasetError) as err:
        MnistDataset(str(tmp_path), download=False)
    msg = str(err.value)
    assert "download is off" in msg and mn.SETS["mnist"]["url"] + TRAIN[0] in msg
    assert str(tmp_path) in msg and mn.SETS["mnist"]["md5"][TRAIN[0]] in msg
    for name in TRAIN:
        shutil.copy(os.path.join(fake["root"], name), tmp_path / name)
    with gzip.open(tmp_path / TRAIN[1], "wb") as fh:
        fh.write(idx_bytes(np.zeros((15,), np.uint8)))          # 15 labels for 16 images
    with pytest.raises(DatasetError, match="corrupt") as err:
        MnistDataset(str(tmp_path), download=False)
    assert mn.SETS["mnist"]["url"] in str(err.value)
    (tmp_path / TRAIN[0]).write_bytes(b"not gzip")
    with pytest.raises(DatasetError, match="corrupt"):
        MnistDataset(str(tmp_path), download=False)


def test_download_from_file_url_with_md5(fake, tmp_path, monkeypatch):
    monkeypatch.setitem(mn.BASE_URLS, "fashion_mnist", pathlib.Path(fake["root"]).as_uri() + "/")
    monkeypatch.setitem(mn.SETS["fashion_mnist"], "md5", fake["md5"])
    ds = MnistDataset(str(tmp_path / "new"), name="fashion_mnist")
    np.testing.assert_array_equal(ds.images[:, 0], fake["images"])
    assert sorted(os.listdir(tmp_path / "new")) == sorted(TRAIN)   # no temp files left


def test_download_md5_mismatch_keeps_nothing(fake, tmp_path, monkeypatch):
    monkeypatch.setitem(mn.BASE_URLS, "mnist", pathlib.Path(fake["root"]).as_uri() + "/")
    with pytest.raises(DatasetError) as err:          # the official MD5s cannot match
        MnistDataset(str(tmp_path))
    msg = str(err.value)
    assert "MD5" in msg and fake["md5"][TRAIN[0]] in msg and mn.SETS["mnist"]["md5"][TRAIN[0]] in msg
    assert os.listdir(tmp_path) == []


def test_offline_error_says_url_and_where(tmp_path, monkeypatch):
    monkeypatch.setitem(mn.BASE_URLS, "mnist", "http://127.0.0.1:9/")
    monkeypatch.setattr(mn, "DOWNLOAD_TIMEOUT", 5.0)
    with pytest.raises(DatasetError) as err:
        MnistDataset(str(tmp_path / "d"))
    msg = str(err.value)
    assert "\n" not in msg and "127.0.0.1:9" in msg and mn.SETS["mnist"]["url"] + TRAIN[0] in msg
    assert str(tmp_path / "d") in msg
    assert os.listdir(tmp_path / "d") == []
