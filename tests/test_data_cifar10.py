import os
import pathlib
import pickle
import tarfile
import time

import numpy as np
import pytest

from helpers_data import make_fake_cifar10
from ppddpm.config import ConfigError, DataConfig
from ppddpm.data import build_dataset
from ppddpm.data import cifar10 as c10
from ppddpm.data.cifar10 import Cifar10Dataset
from ppddpm.errors import DatasetError

N = 3  # images per batch file -> 15 train, 3 test


def _scaled(u8):
    return u8.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("cifar"))
    return make_fake_cifar10(root, N)


def _check_all(ds, data, labels):
    assert len(ds) == len(data)
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.dtype == np.float32 and x.shape == (3, 32, 32)
        assert isinstance(y, np.int64) and y == labels[i]
        np.testing.assert_array_equal(x, _scaled(data[i]))     # exactly v/127.5 - 1


def test_fake_files_are_in_the_real_pickle_format(fake):
    with tarfile.open(fake["path"]) as tf:
        raw = tf.extractfile("cifar-10-batches-py/data_batch_2").read()
    assert raw[:2] == b"\x80\x02"                                # protocol 2
    as_bytes = pickle.loads(raw, encoding="bytes")
    assert set(as_bytes) == {b"data", b"labels", b"batch_label", b"filenames"}
    assert as_bytes[b"data"].dtype == np.uint8 and as_bytes[b"data"].shape == (N, 3072)
    as_latin1 = pickle.loads(raw, encoding="latin1")
    np.testing.assert_array_equal(as_latin1["data"].reshape(N, 3, 32, 32),
                                  fake["train_data"][N:2 * N])


def test_reads_from_tar_without_extracting(fake):
    ds = Cifar10Dataset(os.path.dirname(fake["path"]), train=True, random_flip=False)
    _check_all(ds, fake["train_data"], fake["train_labels"])
    test = Cifar10Dataset(os.path.dirname(fake["path"]), train=False, random_flip=False)
    _check_all(test, fake["test_data"], fake["test_labels"])
    assert sorted(os.listdir(os.path.dirname(fake["path"]))) == ["cifar-10-python.tar.gz"]
    # data_dir may also name the archive itself
    _check_all(Cifar10Dataset(fake["path"], train=False, random_flip=False),
               fake["test_data"], fake["test_labels"])


def test_reads_extracted_folder(tmp_path):
    info = make_fake_cifar10(str(tmp_path), 2, seed=5, extracted=True)
    ds = Cifar10Dataset(str(tmp_path), random_flip=False, download=False)
    _check_all(ds, info["train_data"], info["train_labels"])
    _check_all(Cifar10Dataset(info["path"], train=False, random_flip=False, download=False),
               info["test_data"], info["test_labels"])


def test_flip_is_exact_mirror_and_reproducible(fake):
    ds = Cifar10Dataset(os.path.dirname(fake["path"]), random_flip=True)
    plain, mirrored = ds[(4, False)][0], ds[(4, True)][0]
    np.testing.assert_array_equal(plain, _scaled(fake["train_data"][4]))
    np.testing.assert_array_equal(mirrored, plain[:, :, ::-1])
    assert not np.array_equal(mirrored, plain)
    off = Cifar10Dataset(os.path.dirname(fake["path"]), random_flip=False)
    np.testing.assert_array_equal(off[(4, True)][0], plain)         # flip disabled wins
    # bare int keys draw from the data set's own seeded RNG: both outcomes, repeatable
    a = Cifar10Dataset(os.path.dirname(fake["path"]), seed=3)
    b = Cifar10Dataset(os.path.dirname(fake["path"]), seed=3)
    flips_a = [not np.array_equal(a[4][0], plain) for _ in range(40)]
    flips_b = [not np.array_equal(b[4][0], plain) for _ in range(40)]
    assert flips_a == flips_b and 5 < sum(flips_a) < 35


def test_corrupt_or_incomplete_archives(tmp_path, fake):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "cifar-10-python.tar.gz").write_bytes(os.urandom(2000))
    trunc = tmp_path / "trunc"
    trunc.mkdir()
    raw = open(fake["path"], "rb").read()
    (trunc / "cifar-10-python.tar.gz").write_bytes(raw[: len(raw) // 2])
    partial = tmp_path / "partial"
    partial.mkdir()
    with tarfile.open(fake["path"]) as src, \
            tarfile.open(partial / "cifar-10-python.tar.gz", "w:gz") as dst:
        for m in src:
            if not m.name.endswith("data_batch_5"):
                dst.addfile(m, src.extractfile(m) if m.isfile() else None)
    badpickle = tmp_path / "badpickle"
    make_fake_cifar10(str(badpickle), 1, extracted=True)
    (badpickle / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"\x80\x02garbage")
    for folder, needle in [(junk, "corrupt"), (trunc, "corrupt"), (partial, "data_batch_5"),
                           (badpickle, "data_batch_3")]:
        with pytest.raises(DatasetError) as err:
            Cifar10Dataset(str(folder), download=False)
        assert needle in str(err.value) and c10.OFFICIAL_URL in str(err.value)


def test_download_from_file_url_with_md5(tmp_path, fake, monkeypatch):
    monkeypatch.setattr(c10, "CIFAR10_URL", pathlib.Path(fake["path"]).as_uri())
    monkeypatch.setattr(c10, "CIFAR10_MD5", fake["md5"])
    target_dir = tmp_path / "new" / "cifar10"
    ds = Cifar10Dataset(str(target_dir), random_flip=False)
    _check_all(ds, fake["train_data"], fake["train_labels"])
    assert os.listdir(target_dir) == ["cifar-10-python.tar.gz"]      # no temp file left
    assert (target_dir / "cifar-10-python.tar.gz").read_bytes() == open(fake["path"], "rb").read()


def test_download_md5_mismatch_keeps_nothing(tmp_path, fake, monkeypatch):
    monkeypatch.setattr(c10, "CIFAR10_URL", pathlib.Path(fake["path"]).as_uri())
    with pytest.raises(DatasetError) as err:                    # the official MD5 cannot match
        Cifar10Dataset(str(tmp_path))
    msg = str(err.value)
    assert "MD5" in msg and fake["md5"] in msg and c10.OFFICIAL_MD5 in msg
    assert os.listdir(tmp_path) == []


def test_offline_error_is_fast_and_says_where(tmp_path, monkeypatch):
    monkeypatch.setattr(c10, "CIFAR10_URL", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    monkeypatch.setattr(c10, "DOWNLOAD_TIMEOUT", 5.0)
    start = time.monotonic()
    with pytest.raises(DatasetError) as err:
        Cifar10Dataset(str(tmp_path / "d"))
    assert time.monotonic() - start < 10
    msg = str(err.value)
    assert os.path.join(str(tmp_path / "d"), "cifar-10-python.tar.gz") in msg
    assert c10.OFFICIAL_URL in msg and "127.0.0.1:9" in msg
    assert os.listdir(tmp_path / "d") == []


def test_missing_with_download_off(tmp_path):
    with pytest.raises(DatasetError) as err:
        Cifar10Dataset(str(tmp_path), download=False)
    assert str(tmp_path / "cifar-10-python.tar.gz") in str(err.value)
    assert "download is off" in str(err.value)


def test_build_dataset_dispatch(fake):
    ds = build_dataset(DataConfig(dataset="cifar10", data_dir=os.path.dirname(fake["path"]),
                                  random_flip=False))
    assert isinstance(ds, Cifar10Dataset) and len(ds) == 5 * N and not ds.random_flip
    with pytest.raises(ConfigError) as err:
        build_dataset(DataConfig(dataset="imagenet"))
    assert "imagenet" in str(err.value) and "cifar10" in str(err.value) \
        and "celeba_hq" in str(err.value)
    with pytest.raises(ConfigError, match="32x32"):
        build_dataset(DataConfig(dataset="cifar10", image_size=64))
