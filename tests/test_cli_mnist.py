"""MNIST end to end through run_mnist.py on generated idx-gz files: 28x28, one channel.

Every image written is a greyscale (mode "L") PNG of the right size; the data/model
mismatches that used to reach oneDNN are one-line errors naming both values."""

import numpy as np
import paddle
import pytest
from PIL import Image

from helpers_cli import grid_size, run
from helpers_data import make_fake_image_tree, make_fake_mnist

TINY = ["--data_dir", "mnist", "-o", "model.ch=8", "-o", "model.norm_groups=4",
        "-o", "model.num_res_blocks=1", "--num_diffusion_steps", "10", "--batchsize", "4",
        "--num_images", "4-2-2", "--num_workers", "0"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("mnist_cli")
    make_fake_mnist(str(d / "mnist"), n_train=12)
    return d


def _grey(path, size):
    im = Image.open(path)
    assert im.mode == "L" and im.size == size, (path, im.mode, im.size)
    return np.asarray(im)


def test_mnist_workflow_one_channel(workdir):
    d, tile = workdir, 28
    # (no sample grids while training: each would export the network for the predictor)
    run("run_mnist.py", *TINY, "--training_iters", "2", "--ckpt_interval", "2",
        "--sample_interval", "0", cwd=d)
    run("run_mnist.py", *TINY, "--mode", "resume", "--training_iters", "3", "--ckpt_interval", "3",
        "--sample_interval", "0", cwd=d)
    ckpt = paddle.load(str(d / "ckpts" / "mnist_ckpt_iter_3.pdparam"))
    assert ckpt["ckpt_idx"] == 2 and ckpt["config"]["model"]["in_channels"] == 1
    assert ckpt["config"]["data"]["channels"] == 1 and ckpt["config"]["model"]["resolution"] == 28
    assert list(ckpt["model"]["conv_in.weight"].shape)[1] == 1
    run("run_mnist.py", *TINY, "--mode", "convert", cwd=d)
    inference = str(d / "ckpts" / "ddpm_mnist_i3_ema.pdparam")

    run("run_mnist.py", *TINY, "--mode", "denoise", "--pretrained_path", inference,
        "--save_individual", "True", "--save_npz", "True", cwd=d)
    grid = _grey(d / "sample" / "sample_ddpm_mnist_test.png", grid_size(2, 2, tile))
    first = _grey(d / "sample" / "ddpm_mnist_test" / "000000.png", (tile, tile))
    np.testing.assert_array_equal(grid[2:30, 2:30], first)        # tile (0, 0) of the grid
    with np.load(d / "sample" / "ddpm_mnist_test.npz") as f:
        assert f["arr_0"].shape == (4, 28, 28, 1) and f["arr_0"].dtype == np.uint8
        np.testing.assert_array_equal(f["arr_0"][0, :, :, 0], first)
    run("run_mnist.py", *TINY, "--mode", "denoise", "--pretrained_path", inference,
        "--sequence", "True", "--num_images", "2-1-2", cwd=d)
    _grey(d / "sample" / "sample_ddpm_mnist_test.png", grid_size(2, 10, tile))  # 10 steps
    gif = Image.open(d / "sample" / "sample_ddpm_mnist_test.gif")
    assert gif.size == grid_size(1, 2, tile) and gif.n_frames >= 2
    run("run_mnist.py", *TINY, "--mode", "denoise", "--pretrained_path", inference,
        "--sampler", "ddim", "--ddim_steps", "3", cwd=d)
    _grey(d / "sample" / "sample_ddim_mnist_test.png", grid_size(2, 2, tile))


def test_channel_mismatch_is_one_line_naming_both(workdir, tmp_path):
    make_fake_image_tree(str(tmp_path / "rgb"))
    proc = run("run_mnist.py", *TINY, "-o", "data.dataset=folder", "--data_dir", str(tmp_path / "rgb"),
               "-o", "data.channels=3", "-o", "model.in_channels=1", cwd=tmp_path, expect=2)
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("error:") and "3 channel(s)" in line and "model.in_channels=1" in line
    assert "Traceback" not in proc.stderr and "oneDNN" not in proc.stderr
    proc = run("run_mnist.py", *TINY, "-o", "model.in_channels=3", "-o", "model.out_channels=3",
               cwd=workdir, expect=2)
    assert proc.stderr.startswith("error:") and proc.stderr.count("\n") == 1
    assert "1 channel(s)" in proc.stderr and "model.in_channels=3" in proc.stderr
