"""Data sets declare channels, size and class names; the model config must match them."""
import os
import warnings

import numpy as np
import pytest
from PIL import Image

from helpers_data import make_fake_image_tree
from ppddpm.config import ConfigError, DataConfig, ModelConfig
from ppddpm.data import build_dataset
from ppddpm.data.folders import ImageFolderDataset
from ppddpm.data.spec import check_model_matches_data
from ppddpm.data.toy import ToyDataset


def _quiet(*args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ImageFolderDataset(*args, **kw)


def test_class_level_1_and_2_and_root_images(tmp_path):
    make_fake_image_tree(str(tmp_path / "hq"))
    first, second = _quiet(str(tmp_path / "hq"), 8), _quiet(str(tmp_path / "hq"), 8, class_level=2)
    assert first.class_names == ["train", "val"] and second.class_names == ["female", "male"]
    for ds, part in ((first, 0), (second, 1)):
        assert [ds.class_names[y] for y in ds.labels] == [f.split("/")[part] for f in ds.files]
    assert _quiet(str(tmp_path / "hq"), 8, class_level=3).class_names is None
    flat = tmp_path / "flat"
    flat.mkdir()
    for k in range(2):
        Image.fromarray(np.full((6, 6, 3), k, np.uint8)).save(flat / f"{k}.png")
    ds = ImageFolderDataset(str(flat), 6)
    assert ds.class_names is None and ds.classes == [] and [int(ds[i][1]) for i in range(2)] == [-1, -1]
    cfg = DataConfig(dataset="celeba_hq", data_dir=str(tmp_path / "hq"), image_size=8, class_level=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert build_dataset(cfg).class_names == ["female", "male"]


def test_greyscale_folders(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    Image.fromarray(rgb).save(tmp_path / "a_rgb.png")
    Image.fromarray(np.full((4, 4), 77, np.uint8), mode="L").save(tmp_path / "b_grey.png")
    Image.fromarray(np.full((4, 4), 300 * 257 // 2, np.uint16)).save(tmp_path / "c_16bit.png")
    ds = build_dataset(DataConfig(dataset="folder", data_dir=str(tmp_path), image_size=4,
                                  channels=1, random_flip=False))
    assert ds.channels == 1 and ds.image_size == 4
    colour, grey, deep = (ds[i][0] for i in range(3))
    assert colour.shape == grey.shape == (1, 4, 4)
    luma = np.uint8((200 * 299 + 100 * 587 + 50 * 114 + 500) // 1000)  # ITU-R 601-2, rounded
    np.testing.assert_allclose((colour + 1) * 127.5, np.full((1, 4, 4), luma), atol=1)
    np.testing.assert_array_equal(grey, np.full((1, 4, 4), np.float32(77) / np.float32(127.5) - 1))
    np.testing.assert_allclose((deep + 1) * 127.5, np.full((1, 4, 4), 150), atol=1)
    with pytest.raises(ConfigError, match="data.channels"):
        from ppddpm.config import Config
        Config.from_dict({"data": {"channels": 2}})


@pytest.mark.parametrize("name,names", [("gaussian8", [f"mode{k}" for k in range(8)]),
                                        ("moons", ["upper", "lower"]), ("scurve", None)])
def test_toy_sets_declare_their_modes(name, names):
    ds = ToyDataset(name, n=500)
    assert (ds.channels, ds.image_size, ds.class_names) == (2, 1, names)
    if names:
        assert set(np.unique(ds.labels)) == set(range(len(names)))


def test_model_data_mismatch_messages(tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    ds = ImageFolderDataset(str(tmp_path), 8)
    check_model_matches_data(ds, ModelConfig(resolution=8))
    with pytest.raises(ConfigError) as err:
        check_model_matches_data(ds, ModelConfig(resolution=8, in_channels=1, out_channels=1))
    assert "3 channel(s)" in str(err.value) and "model.in_channels=1" in str(err.value)
    with pytest.raises(ConfigError) as err:
        check_model_matches_data(ds, ModelConfig(resolution=16))
    assert "8x8" in str(err.value) and "model.resolution=16" in str(err.value)
    # learn_sigma doubles the network's output itself: out_channels stays the data's
    check_model_matches_data(ds, ModelConfig(resolution=8, learn_sigma=True))


def test_image_size_and_channels_are_one_setting(tmp_path):
    from ppddpm.cli import resolve_config
    from ppddpm.cli.args import build_parser
    yaml = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs",
                        "celeba_hq.yaml")

    def cfg_of(*argv):
        return resolve_config(build_parser("t").parse_args(list(argv)), yaml)

    cfg = cfg_of("--image_size", "32")
    assert cfg.data.image_size == cfg.model.resolution == 32
    cfg = cfg_of("-o", "data.channels=1", "-o", "data.image_size=64")
    assert (cfg.model.in_channels, cfg.model.out_channels, cfg.model.resolution) == (1, 1, 64)
    cfg = cfg_of("-o", "data.channels=1", "-o", "model.in_channels=3")  # explicit: checked later
    assert (cfg.data.channels, cfg.model.in_channels) == (1, 3)
