"""Sampling flags users of the PyTorch DDPM repositories expect (--device, --nrow,
--to_grayscale, --save_path, --interval, --show), and a script given another data set's
model. The weights are untrained tiny UNets written straight to inference files."""
import hashlib
import os

import numpy as np
import paddle
import pytest
from PIL import Image

from helpers_cli import ROOT, grid_size, run
from ppddpm.cli import main
from ppddpm.config import load_config
from ppddpm.diffusion import GaussianDiffusion
from ppddpm.models import build_model
from ppddpm.convert.pretrained import save_inference_file

CIFAR = os.path.join(ROOT, "configs", "cifar10.yaml")
TINY_NET = ["model.ch=8", "model.ch_mult=[1,2]", "model.num_res_blocks=1",
            "model.attn_resolutions=[]", "model.norm_groups=4", "diffusion.num_diffusion_steps=20"]


def tiny_weights(path, seed=0):
    """An inference file of a tiny CIFAR-10 UNet with random weights (the output conv too,
    so that samples vary across pixels and channels)."""
    from ppddpm.config import apply_overrides
    cfg = apply_overrides(load_config(CIFAR), TINY_NET)
    paddle.seed(seed)
    model = build_model(cfg.model)
    state = {k: (v if "out" not in k else paddle.randn(v.shape) * 0.1)
             for k, v in model.state_dict().items()}
    betas = GaussianDiffusion.from_config(cfg.diffusion).betas
    return save_inference_file(str(path), state, betas, {}, cfg)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return tiny_weights(tmp_path_factory.mktemp("w") / "cifar_tiny_ema.pdparam")


def denoise(tmp_path, weights, *flags):
    argv = ["--mode", "denoise", "--pretrained_path", weights, "--engine", "dygraph",
            "--sample_dir", str(tmp_path / "sample"), "--quiet", *flags]
    assert main(CIFAR, "t", argv=argv) == 0


def test_device_gpu_without_a_gpu_is_one_line(weights, tmp_path):
    if paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
        pytest.skip("this machine has a GPU")
    proc = run("run_cifar10.py", "--mode", "denoise", "--pretrained_path", weights,
               "--device", "gpu", cwd=tmp_path, expect=2)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --device gpu") and "--device cpu" in lines[0]


def test_nrow_grayscale_save_path_and_show_without_display(weights, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    grey, rgb = tmp_path / "out" / "grid.png", tmp_path / "out" / "rgb.png"
    # 5 images, 2 per row: 3 rows, the last with one image and one empty (white) cell.
    denoise(tmp_path, weights, "--num_images", "5", "--nrow", "2", "--to_grayscale",
            "--save_path", str(grey), "--show")
    out = capsys.readouterr().out
    assert "no display" in out and os.path.abspath(grey) in out
    denoise(tmp_path, weights, "--num_images", "5", "--nrow", "2", "--save_path", str(rgb))
    assert not (tmp_path / "sample").exists()   # --save_path replaced the default file
    g, c = Image.open(grey), Image.open(rgb)
    assert g.mode == "L" and c.mode == "RGB"
    assert g.size == c.size == grid_size(3, 2)
    pixels = np.asarray(c)
    assert np.ptp(pixels[2:34, 2:34].astype(int), axis=2).max() > 0   # a coloured tile
    # The grey grid is the colour grid through Pillow's ITU-R 601 luma, byte for byte.
    np.testing.assert_array_equal(np.asarray(g), np.asarray(c.convert("L")))
    assert (pixels[70:, 36:] == 255).all()    # the sixth cell is empty


def test_interval_is_the_sequence_stride(weights, tmp_path):
    seq = tmp_path / "seq" / "frames.png"
    denoise(tmp_path, weights, "--sequence", "True", "--interval", "5", "--num_images", "2-1-2",
            "--save_path", str(seq))
    # One row per image, one column per kept step: T = 20 steps, every 5th -> 4 frames.
    assert Image.open(seq).size == grid_size(2, 4)
    assert Image.open(tmp_path / "seq" / "frames_xt.png").size == grid_size(2, 4)
    gif = Image.open(tmp_path / "seq" / "frames.gif")
    assert gif.size == grid_size(1, 2) and gif.n_frames >= 2


def test_celeba_ddim_script_given_a_cifar10_model(weights, tmp_path):
    sample = tmp_path / "sample"
    sample.mkdir()
    celeba_grid = sample / "sample_ddim_celeba_hq_test.png"
    Image.new("RGB", (10, 10), (1, 2, 3)).save(celeba_grid)
    before = hashlib.sha256(celeba_grid.read_bytes()).hexdigest()
    proc = run("run_celeba_hq_ddim.py", "--pretrained_path", weights, "--num_images", "4-2-2",
               "--ddim_steps", "2", "--engine", "dygraph", "--sample_dir", "sample", cwd=tmp_path)
    notes = [l for l in proc.stderr.splitlines() if l.startswith("note:")]
    assert len(notes) == 1, proc.stderr
    assert "cifar10 (3x32x32)" in notes[0] and "celeba_hq (3x128x128)" in notes[0]
    assert hashlib.sha256(celeba_grid.read_bytes()).hexdigest() == before
    assert Image.open(sample / "sample_ddim_cifar10_test.png").size == grid_size(2, 2)
    assert sorted(os.listdir(sample)) == ["sample_ddim_celeba_hq_test.png",
                                          "sample_ddim_cifar10_test.png"]


def test_bars_on_a_terminal_include_the_toy_demos_final_sampling(tmp_path):
    """On a terminal (a pseudo-terminal here) training and the demo's final sampling draw bars;
    Paddle's own log lines stay out of them."""
    import fcntl
    import pty
    import struct
    import subprocess
    import sys
    import termios
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    env.pop("GLOG_minloglevel", None)
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "run_toy.py"), "--training_iters",
                             "10", "--ckpt_interval", "0", "--num_images", "50-5-10",
                             "--respacing", "5", "--batchsize", "64"],
                            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:   # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=300) == 0
    os.close(master)
    text = b"".join(chunks).decode("utf-8", "replace")
    assert "train: 100%" in text and "\r" in text
    assert "DDPMSampler" in text           # the final sampling's steps
    assert "wrote " in text and "sample_iter10.png" in text
    assert not any(line[:1] in "IW" and line[1:5].isdigit() for line in text.splitlines())


@pytest.mark.parametrize("argv, needle", [
    (["--nrow", "two"], "--nrow: invalid int value: 'two'"),
    (["--nrow", "0"], "--nrow: must be >= 1, got 0"),
    (["--show", "maybe"], "--show"),
    (["--device", "tpu"], "--device: invalid choice: 'tpu'"),
])
def test_bad_flag_values_get_one_line(argv, needle, capsys):
    with pytest.raises(SystemExit) as done:
        main(CIFAR, "t", argv=argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert done.value.code == 2 and len(err) == 1, err
    assert err[0].startswith("error: argument ") and needle in err[0] and "--help" in err[0]


def test_display_detection():
    from ppddpm.io.grid_output import display_available
    assert not display_available({}, "linux")
    assert display_available({"DISPLAY": ":0"}, "linux")
    assert display_available({"WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert display_available({}, "darwin") and display_available({}, "win32")
