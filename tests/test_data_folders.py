import os
import warnings

import numpy as np
import pytest
from PIL import Image

from helpers_data import make_fake_image_tree, write_png_with_bad_pixel_data
from ppddpm.config import DataConfig
from ppddpm.data import build_dataset
from ppddpm.data.folders import ImageFolderDataset, find_images
from ppddpm.errors import DatasetError


def _scaled(u8):
    return u8.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


def _quiet(*args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ImageFolderDataset(*args, **kw)


def test_original_layout_tree(tmp_path):
    info = make_fake_image_tree(str(tmp_path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = ImageFolderDataset(str(tmp_path), 16, class_level=2)
    msgs = [str(w.message) for w in caught]
    assert len(msgs) == 1 and "skipped 1 unreadable" in msgs[0] and info["bad"] in msgs[0]
    assert ds.files == info["good"] and ds.skipped == [info["bad"]]
    assert ds.classes == ["female", "male"]
    for i, rel in enumerate(ds.files):
        x, y = ds[(i, False)]
        assert x.shape == (3, 16, 16) and x.dtype == np.float32
        assert -1.0 <= x.min() and x.max() <= 1.0
        assert ds.classes[int(y)] == rel.split("/")[1]
    grey = ds[(ds.files.index("train/male/001.jpg"), False)][0]
    np.testing.assert_array_equal(grey[0], grey[1])              # L -> equal RGB channels
    np.testing.assert_array_equal(grey[1], grey[2])


def test_exact_pixels_flip_and_centre_crop(tmp_path):
    v = (np.arange(8 * 16 * 3) % 251).astype(np.uint8).reshape(8, 16, 3)
    Image.fromarray(v).save(tmp_path / "a.png")                  # h=8, w=16: no resize
    ds = ImageFolderDataset(str(tmp_path), 8)
    plain, mirrored = ds[(0, False)][0], ds[(0, True)][0]
    want = _scaled(v[:, 4:12].transpose(2, 0, 1))                  # centre 8 of 16 columns
    np.testing.assert_array_equal(plain, want)
    np.testing.assert_array_equal(mirrored, want[:, :, ::-1])
    off = ImageFolderDataset(str(tmp_path), 8, random_flip=False)
    np.testing.assert_array_equal(off[(0, True)][0], want)


def test_resize_shorter_side_then_crop(tmp_path):
    img = np.zeros((40, 80, 3), np.uint8)                      # tall bands: left/centre/right
    img[:, :24] = (255, 0, 0)
    img[:, 24:56] = (10, 200, 30)
    img[:, 56:] = (0, 0, 255)
    Image.fromarray(img).save(tmp_path / "wide.png")
    x = ImageFolderDataset(str(tmp_path), 10, random_flip=False)[0][0]
    # 40x80 -> 10x20 (bands 0-6 / 6-14 / 14-20), then the centre columns 5..14 are kept:
    # the middle columns are pure green, the first leans red and the last blue.
    assert x.shape == (3, 10, 10)
    np.testing.assert_array_equal(x[:, :, 3:7], np.broadcast_to(
        _scaled(np.array([10, 200, 30], np.uint8))[:, None, None], (3, 10, 4)))
    assert x[0, 5, 0] > x[2, 5, 0] and x[2, 5, 9] > x[0, 5, 9]


def test_modes_converted_to_rgb(tmp_path):
    Image.fromarray(np.full((4, 4), 77, np.uint8), mode="L").save(tmp_path / "a_grey.png")
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = (20, 40, 60)
    rgba[..., 3] = 255
    rgba[0, 0, 3] = 0                                           # fully transparent -> white
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "b_rgba.png")
    pal = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), mode="P")
    pal.putpalette([5, 6, 7, 200, 100, 50] + [0] * 762)
    pal.resize((4, 4), Image.NEAREST).save(tmp_path / "c_pal.png")
    ds = ImageFolderDataset(str(tmp_path), 4, random_flip=False)
    grey, colour, palette = (ds[i][0] for i in range(3))
    np.testing.assert_array_equal(grey, np.full((3, 4, 4), _scaled(np.uint8(77))))
    np.testing.assert_array_equal(colour[:, 1, 1], _scaled(np.array([20, 40, 60], np.uint8)))
    np.testing.assert_array_equal(colour[:, 0, 0], [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(palette[:, 0, 0], _scaled(np.array([5, 6, 7], np.uint8)))
    np.testing.assert_array_equal(palette[:, 0, 3], _scaled(np.array([200, 100, 50], np.uint8)))


def test_discovery_is_recursive_sorted_and_filtered(tmp_path):
    for rel in ["b/z.JPG", "a/y.png", "a/deep/x.webp", "c.jpeg", "notes.txt", ".hidden.png",
                ".cache/w.png"]:
        os.makedirs(os.path.dirname(tmp_path / rel), exist_ok=True)
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / rel, format="PNG")
    assert find_images(str(tmp_path)) == ["a/deep/x.webp", "a/y.png", "b/z.JPG", "c.jpeg"]


def test_image_damaged_inside_falls_back_to_next_image(tmp_path):
    write_png_with_bad_pixel_data(tmp_path / "a.png")  # passes verify(), fails when decoded
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(tmp_path / "b.png")
    ds = ImageFolderDataset(str(tmp_path), 8, random_flip=False)
    assert len(ds) == 2
    with pytest.warns(UserWarning, match="a.png"):
        x, _ = ds[0]
    np.testing.assert_array_equal(x, np.full((3, 8, 8), _scaled(np.uint8(200))))


def test_missing_empty_and_all_broken_folders(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        ImageFolderDataset(str(tmp_path / "nope"), 8)
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("no images")
    with pytest.raises(DatasetError, match="no readable") as err:
        ImageFolderDataset(str(tmp_path / "empty"), 8)
    assert str(tmp_path / "empty") in str(err.value)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="1 unreadable"):
        _quiet(str(tmp_path / "broken"), 8)


def test_build_dataset_folder_names(tmp_path):
    make_fake_image_tree(str(tmp_path))
    for name in ("folder", "celeba_hq"):
        ds = _quiet_build(DataConfig(dataset=name, data_dir=str(tmp_path), image_size=12))
        assert isinstance(ds, ImageFolderDataset) and len(ds) == 7
        assert ds[0][0].shape == (3, 12, 12)


def _quiet_build(cfg):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_dataset(cfg)
