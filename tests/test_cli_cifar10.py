"""The CIFAR-10 workflow end to end through the command line, on a tiny generated data set
in the real format and a tiny UNet: train, resume, convert, denoise, sequence, DDIM."""
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest
from PIL import Image

from helpers_cli import ROOT, grid_size, run, tiny_cifar10_yaml
from helpers_data import make_fake_cifar10

TINY = tiny_cifar10_yaml("{batchsize: 4, training_iters: 6, warmup_steps: 2, "
                         "sample_interval: 3, ckpt_interval: 3}")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cifar")
    make_fake_cifar10(str(d / "ds"), 8)
    (d / "tiny.yaml").write_text(TINY)
    return d


@pytest.fixture(scope="module")
def trained(workdir):
    run("run_cifar10.py", "--config", "tiny.yaml", "--data_dir", "ds", "--mode", "train", cwd=workdir)
    return workdir


def test_train_writes_original_files(trained):
    ckpts = sorted(os.listdir(trained / "ckpts"))
    assert ckpts == ["cifar10_ckpt_iter_3.pdparam", "cifar10_ckpt_iter_6.pdparam",
                     "ddpm_cifar10_i6.pdparam", "ddpm_cifar10_i6_ema.pdparam"]
    ckpt = paddle.load(str(trained / "ckpts" / "cifar10_ckpt_iter_6.pdparam"))
    for key in ("model", "model_ema", "optim", "lr_sched", "ckpt_idx", "betas", "options",
                "config", "version", "rng"):
        assert key in ckpt, key
    assert ckpt["ckpt_idx"] == 5
    assert ckpt["betas"].dtype == np.float64 and len(ckpt["betas"]) == 20
    assert ckpt["options"]["data_dir"] == "ds"
    assert sorted(os.listdir(trained / "sample")) == ["sample_iter3.png", "sample_iter6.png"]
    assert Image.open(trained / "sample" / "sample_iter6.png").size == grid_size(2, 2)
    lines = (trained / "log" / "scalars.csv").read_text().splitlines()
    assert lines[0] == "step,tag,value,run" and sum(",loss," in l for l in lines) == 6


def test_resume_convert_denoise_sequence_ddim(trained):
    d = trained
    run("run_cifar10.py", "--config", "tiny.yaml", "--data_dir", "ds", "--resume", "True",
        "--training_iters", "8", "--keep_last", "2", cwd=d)
    ckpts = [f for f in os.listdir(d / "ckpts") if "_ckpt_iter_" in f]
    assert sorted(ckpts) == ["cifar10_ckpt_iter_6.pdparam", "cifar10_ckpt_iter_8.pdparam"]
    run("run_cifar10.py", "--config", "tiny.yaml", "--mode", "convert", cwd=d)
    inference = d / "ckpts" / "ddpm_cifar10_i8_ema.pdparam"
    saved = paddle.load(str(inference))
    assert sorted(saved) == ["betas", "config", "model", "options", "version"]
    train_ckpt = paddle.load(str(d / "ckpts" / "cifar10_ckpt_iter_8.pdparam"))
    for k, v in train_ckpt["model_ema"].items():
        np.testing.assert_array_equal(np.asarray(saved["model"][k]), v.numpy())

    run("run_cifar10.py", "--config", "tiny.yaml", "--mode", "denoise", "--pretrained_path",
        str(inference), "--num_images", "6-2-3", "--batchsize", "4", "--save_individual", "True",
        "--save_npz", "True", cwd=d)
    grid = Image.open(d / "sample" / "sample_ddpm_cifar10_test.png")
    assert grid.size == grid_size(2, 3)
    pixels = np.asarray(grid)
    assert (pixels[:2] == 255).all() and (pixels[:, 34:36] == 255).all()  # white 2-px borders
    singles = sorted(os.listdir(d / "sample" / "ddpm_cifar10_test"))
    assert singles == [f"{i:06d}.png" for i in range(6)]
    arr = np.load(d / "sample" / "ddpm_cifar10_test.npz")["arr_0"]
    assert arr.shape == (6, 32, 32, 3) and arr.dtype == np.uint8
    np.testing.assert_array_equal(arr[4], np.asarray(Image.open(d / "sample" / "ddpm_cifar10_test" / "000004.png")))
    np.testing.assert_array_equal(arr[1], pixels[2:34, 36:68])  # tile (row 0, col 1)

    run("run_cifar10.py", "--config", "tiny.yaml", "--mode", "denoise", "--pretrained_path",
        str(inference), "--sequence", "True", "--sequence_every", "5", cwd=d)
    # the original's name for the main image (predicted x0 over time), x_t and GIF beside it
    seq = Image.open(d / "sample" / "sample_ddpm_cifar10_test.png")
    assert seq.size == grid_size(4, 4)  # 4 images x (20 steps / 5) frames
    assert Image.open(d / "sample" / "sample_ddpm_cifar10_test_xt.png").size == grid_size(4, 4)
    gif = Image.open(d / "sample" / "sample_ddpm_cifar10_test.gif")
    assert gif.n_frames >= 2 and gif.size == grid_size(2, 2)
    # --sequence False really is false: the plain grid is written again, not a sequence.
    run("run_cifar10.py", "--config", "tiny.yaml", "--mode", "denoise", "--pretrained_path",
        str(inference), "--sequence", "False", "--num_images", "4-2-2", cwd=d)
    assert Image.open(d / "sample" / "sample_ddpm_cifar10_test.png").size == grid_size(2, 2)

    run("run_cifar10_ddim.py", "--config", "tiny.yaml", "--pretrained_path", str(inference),
        "--stride", "4", "--eta", "0.5", "--skip", "uniform", cwd=d)
    assert Image.open(d / "sample" / "sample_ddim_cifar10_test.png").size == grid_size(2, 2)


def test_exact_resume(workdir, tmp_path):
    """6 iterations in one go == 3 iterations, stop, resume 3 more: same losses, same weights."""
    base = ["--config", str(workdir / "tiny.yaml"), "--data_dir", str(workdir / "ds"),
            "--sample_interval", "0"]
    run("run_cifar10.py", *base, "--ckpt_dir", "a", "--log_dir", "la", cwd=tmp_path)
    run("run_cifar10.py", *base, "--ckpt_dir", "b", "--log_dir", "lb", "--training_iters", "3",
        cwd=tmp_path)
    # Resume continues the checkpoint's own run (3 iterations long): extend it to 6.
    run("run_cifar10.py", *base, "--ckpt_dir", "b", "--log_dir", "lb", "--mode", "resume",
        "--training_iters", "6", cwd=tmp_path)
    a = paddle.load(str(tmp_path / "a" / "cifar10_ckpt_iter_6.pdparam"))
    b = paddle.load(str(tmp_path / "b" / "cifar10_ckpt_iter_6.pdparam"))
    for part in ("model", "model_ema"):
        for k in a[part]:
            np.testing.assert_array_equal(a[part][k].numpy(), b[part][k].numpy(), err_msg=k)
    # step,tag,value of every loss row (the last column, the run id, differs between the runs)
    losses = lambda d: [l.rsplit(",", 1)[0] for l in (tmp_path / d / "scalars.csv").read_text().splitlines()
                        if ",loss," in l]
    assert losses("la") == losses("lb") and len(losses("la")) == 6


def test_clear_errors(trained, tmp_path):
    d = trained
    inference = str(d / "ckpts" / "ddpm_cifar10_i6_ema.pdparam")
    cases = [
        (["--mode", "train", "--data_dir", str(tmp_path / "empty"), "-o", "data.download=false"],
         "cifar-10-python.tar.gz"),
        (["--mode", "denoise", "--pretrained_path", inference, "--num_images", "10-3-3"], "10-3-3"),
        (["--mode", "denoise", "--pretrained_path", inference, "--num_images", "ten"], "ten"),
        (["--mode", "denoise", "--pretrained_path", str(tmp_path / "missing.pdparam")], "does not exist"),
        (["--mode", "resume", "--resume_ckpt_path", str(tmp_path / "missing.pdparam")], "does not exist"),
        (["--mode", "train", "--lr", "abc"], "--lr"),
        (["--mode", "denoise", "--pretrained_path", inference, "--var_type", "fixed_medium"], "fixed_medium"),
        (["--mode", "train", "--conv_backend", "cudnn"], "cudnn"),
    ]
    corrupt = tmp_path / "corrupt.pdparam"
    corrupt.write_bytes(open(inference, "rb").read()[:200])
    cases.append((["--mode", "denoise", "--pretrained_path", str(corrupt)], "corrupt"))
    # A checkpoint whose architecture does not match the config (ch 64 instead of 32).
    cases.append((["--mode", "resume", "--resume_ckpt_path", str(d / "ckpts" / "cifar10_ckpt_iter_6.pdparam"),
                   "-o", "model.ch=64", "--data_dir", "ds"], "ch: file has 32, expected 64"))
    for args, needle in cases:
        proc = run("run_cifar10.py", "--config", "tiny.yaml", *args, cwd=d, expect=2)
        assert needle in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr, proc.stderr


def test_help_explains_every_flag():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "run_cifar10.py"), "--help"],
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0
    for flag in ("--num_images", "--pretrained_path", "--resume_ckpt_path", "--sample_postfix",
                 "--batchsize", "--stride", "--sequence", "--mode", "--keep_last", "-o"):
        assert flag in proc.stdout
    # argparse prints "(default: None)"-style help for every option; none is left blank.
    assert "--ema_decay X" in proc.stdout and "EMA decay" in proc.stdout   # X: a number
