"""CelebA 64 from a generated img_align_celeba.zip (178x218 JPEGs in the official layout)."""
import io
import os
import zipfile

import numpy as np
import pytest
from PIL import Image

from helpers_data import make_fake_celeba
from ppddpm.config import DataConfig
from ppddpm.data import build_dataset, build_loader
from ppddpm.data import celeba64
from ppddpm.data.celeba64 import CelebA64Dataset
from ppddpm.errors import DatasetError


def _scaled(u8):
    return u8.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


def _decoded(zip_path, name):
    with zipfile.ZipFile(zip_path) as zf:
        return np.asarray(Image.open(io.BytesIO(zf.read(name))).convert("RGB"))


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    return make_fake_celeba(str(tmp_path_factory.mktemp("celeba")))


def test_crop_is_ddims_box_read_from_the_zip(fake):
    ds = CelebA64Dataset(os.path.dirname(fake["path"]), 128, random_flip=False)
    assert (ds.channels, ds.image_size, ds.class_names) == (3, 128, None)
    assert ds.files == fake["names"] and len(ds) == 6
    for i, name in enumerate(fake["names"]):
        x, y = ds[i]
        # DDIM: cx=89, cy=121, rows cy-64..cy+64, columns cx-64..cx+64
        want = _decoded(fake["path"], name)[121 - 64:121 + 64, 89 - 64:89 + 64]
        np.testing.assert_array_equal(x, _scaled(want.transpose(2, 0, 1)))
        assert int(y) == -1
    # the pattern encodes position: R = column*255/177, G = row*255/217 (JPEG error aside)
    x = ds[0][0]
    corner = (x[:, 0, 0] + 1) * 127.5
    assert abs(corner[0] - 25 * 255 / 177) < 3 and abs(corner[1] - 57 * 255 / 217) < 3
    far = (x[:, 127, 127] + 1) * 127.5
    assert abs(far[0] - 152 * 255 / 177) < 3 and abs(far[1] - 184 * 255 / 217) < 3


def test_64_is_a_bilinear_resize_and_folder_equals_zip(fake, tmp_path):
    ds = build_dataset(DataConfig(dataset="celeba64", data_dir=fake["path"], image_size=64,
                                  random_flip=False))
    crop = _decoded(fake["path"], fake["names"][2])[57:185, 25:153]
    want = np.asarray(Image.fromarray(crop).resize((64, 64), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(ds[2][0], _scaled(want.transpose(2, 0, 1)))
    with zipfile.ZipFile(fake["path"]) as zf:
        zf.extractall(tmp_path)
    extracted = CelebA64Dataset(str(tmp_path), 64, random_flip=False)
    assert extracted.kind == "dir" and len(extracted) == len(ds)
    for i in range(len(ds)):
        np.testing.assert_array_equal(extracted[i][0], ds[i][0])
    grey = CelebA64Dataset(str(tmp_path), 64, random_flip=False, channels=1)
    assert grey[2][0].shape == (1, 64, 64) and grey.channels == 1


def test_partition_file_keeps_the_train_split(fake, tmp_path):
    os.link(fake["path"], tmp_path / celeba64.ZIP_NAME)
    rows = ["000001.jpg 0", "000002.jpg 1", "000003.jpg 0", "000004.jpg 2", "000005.jpg 0",
            "000006.jpg 1"]
    (tmp_path / celeba64.PARTITION_NAME).write_text("\n".join(rows) + "\n")
    ds = CelebA64Dataset(str(tmp_path), 64)
    assert [os.path.basename(f) for f in ds.files] == ["000001.jpg", "000003.jpg", "000005.jpg"]


def test_worker_processes_read_the_zip_alike(fake):
    ds = CelebA64Dataset(fake["path"], 16)
    one = [b[0].numpy() for b in build_loader(ds, 3, num_workers=0, seed=1)]
    two = [b[0].numpy() for b in build_loader(ds, 3, num_workers=2, seed=1)]
    assert len(one) == 2
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_missing_or_wrong_files_are_one_line_errors(tmp_path):
    with pytest.raises(DatasetError) as err:
        CelebA64Dataset(str(tmp_path), 64)
    msg = str(err.value)
    assert "\n" not in msg and celeba64.ZIP_URL in msg and celeba64.ZIP_MD5 in msg
    assert str(tmp_path / celeba64.ZIP_NAME) in msg
    (tmp_path / celeba64.ZIP_NAME).write_bytes(b"PK not really")
    with pytest.raises(DatasetError, match="not a readable zip"):
        CelebA64Dataset(str(tmp_path), 64)
    other = tmp_path / "other"
    other.mkdir()
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(other / "a.jpg")
    Image.fromarray(np.zeros((218, 178, 3), np.uint8)).save(other / "b.jpg")
    ds = CelebA64Dataset(str(other), 64)
    with pytest.warns(UserWarning, match="not an aligned CelebA image"):
        x, _ = ds[0]                           # the 40x40 file: the next (aligned) one is used
    np.testing.assert_array_equal(x, np.full((3, 64, 64), -1.0, np.float32))


def test_run_celeba64_trains_from_the_zip_and_samples_at_the_size_given(fake, tmp_path):
    """run_celeba64.py as a user runs it on the official zip, at --image_size 16 (which sets
    the model's resolution too): train, convert, then DDIM samples of 16x16 RGB tiles."""
    from helpers_cli import grid_size, run
    tiny = ["--data_dir", os.path.dirname(fake["path"]), "--image_size", "16",
            "-o", "model.ch=8", "model.norm_groups=4", "model.ch_mult=[1,2]",
            "model.num_res_blocks=1", "model.attn_resolutions=[8]",
            "--num_diffusion_steps", "10", "--batchsize", "2", "--num_workers", "0",
            "--num_images", "4-2-2"]
    run("run_celeba64.py", *tiny, "--training_iters", "2", "--sample_interval", "0", cwd=tmp_path)
    run("run_celeba64.py", *tiny, "--mode", "convert", cwd=tmp_path)
    weights = str(tmp_path / "ckpts" / "ddpm_celeba64_i2_ema.pdparam")
    run("run_celeba64.py", *tiny, "--mode", "denoise", "--pretrained_path", weights,
        "--sampler", "ddim", "--steps", "3", "--engine", "dygraph", cwd=tmp_path)
    grid = Image.open(tmp_path / "sample" / "sample_ddim_celeba64_test.png")
    assert grid.mode == "RGB" and grid.size == grid_size(2, 2, 16)
