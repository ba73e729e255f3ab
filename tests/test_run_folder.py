"""What a run leaves in its folders: one run per checkpoint folder (lock, --overwrite,
finished runs, stale temp files), no NaN/inf weights ever written, a full disk mid-run,
and a folder of single PNGs cut short."""
import glob
import os
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import paddle
import pytest
from PIL import Image

from dist_workers import FixedImages, tiny_config
from helpers_cli import ROOT, run, tiny_cifar10_yaml
from helpers_data import make_fake_cifar10

from ppddpm.io import images
from ppddpm.cli import main
from ppddpm.data import build_loader
from ppddpm.diffusion import GaussianDiffusion
from ppddpm.errors import CheckpointError, TrainingDiverged
from ppddpm.models import build_model
from ppddpm.io.weights import atomic_save, load_checkpoint
from ppddpm.train.finite import all_finite, first_non_finite
from ppddpm.train.runlock import LOCK_NAME, RunFolderBusy, RunLock
from ppddpm.train.trainer import Trainer

TINY = tiny_cifar10_yaml("{batchsize: 2, training_iters: 2, warmup_steps: 2, "
                         "sample_interval: 0, ckpt_interval: 0}")
CIFAR = os.path.join(ROOT, "configs", "cifar10.yaml")


def cli(d, *args):
    """The shared CLI entry in this process, with every output folder under ``d``."""
    return main(CIFAR, "test", argv=["--config", str(d / "tiny.yaml"), "--data_dir", str(d / "ds"),
                                     "--log_dir", str(d / "log"), "--sample_dir", str(d / "sample"),
                                     *args])


def one_error_line(proc):
    err = [l for l in proc.stderr.splitlines() if l.startswith(("error", "Traceback"))]
    assert len(err) == 1 and err[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return err[0]


def snapshot(folder):
    """{name: (size, mtime_ns, bytes hash)} of every file in folder."""
    out = {}
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as fh:
            data = fh.read()
        st = os.stat(os.path.join(folder, name))
        out[name] = (st.st_size, st.st_mtime_ns, hash(data))
    return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("runfolder")
    make_fake_cifar10(str(d / "ds"), 4)
    (d / "tiny.yaml").write_text(TINY)
    assert cli(d, "--ckpt_dir", str(d / "base"), "--quiet") == 0   # 2 iterations
    return d


def fresh_copy(workdir, name):
    shutil.copytree(workdir / "base", workdir / name)
    return workdir / name


# -- the lock -------------------------------------------------------------------------
def test_lock_refuses_a_live_holder_and_takes_over_a_dead_ones(tmp_path):
    first = RunLock(str(tmp_path))
    assert first.acquire() is None
    with pytest.raises(RunFolderBusy, match=f"pid {os.getpid()} on "):
        RunLock(str(tmp_path)).acquire()
    first.release()
    assert not (tmp_path / LOCK_NAME).exists()
    # A lock file left by a process that is gone (killed before it could remove it).
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / LOCK_NAME).write_text(f"pid {dead.pid}\nhost {os.uname().nodename}\nstarted x\n")
    lock = RunLock(str(tmp_path))
    note = lock.acquire()
    assert note is not None and f"pid {dead.pid}" in note and "no longer running" in note
    assert f"pid {os.getpid()}\n" in (tmp_path / LOCK_NAME).read_text()
    lock.release()


def cli_error(capsys):
    """The one line a failed in-process CLI call printed."""
    err = capsys.readouterr().err
    lines = [l for l in err.splitlines() if l.strip()]
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_a_second_trainer_on_a_locked_folder_is_refused(workdir, capsys):
    folder = fresh_copy(workdir, "locked")
    before = snapshot(folder)
    with RunLock(str(folder)):        # a live run (another process: here, this one) owns it
        assert cli(workdir, "--ckpt_dir", str(folder), "--mode", "resume", "--training_iters",
                   "3", "--quiet") == 2
        line = cli_error(capsys)
        assert f"pid {os.getpid()}" in line and "in use by another training run" in line
        assert snapshot(folder) == {**before, LOCK_NAME: snapshot(folder)[LOCK_NAME]}


def test_train_into_a_folder_with_checkpoints_is_refused(workdir):
    folder = fresh_copy(workdir, "used")
    before = snapshot(folder)
    proc = run("run_cifar10.py", "--config", "tiny.yaml", "--data_dir", "ds", "--ckpt_dir", "used",
               "--mode", "train", cwd=workdir, expect=2)
    line = one_error_line(proc)
    assert "already holds 1 training checkpoint(s)" in line
    assert "--mode resume" in line and "--overwrite True" in line
    assert snapshot(folder) == before


def test_overwrite_stale_temps_and_finished_runs(workdir, capsys):
    folder = fresh_copy(workdir, "over")
    (folder / "cifar10_ckpt_iter_50.pdparam").write_bytes(b"an earlier run")
    stale = folder / ".cifar10_ckpt_iter_51.pdparam.k2j4h6g8.tmp"   # a killed save
    stale.write_bytes(b"half a checkpoint")
    others = [folder / ".notes.txt.abcdefgh.tmp", folder / ".other_ckpt_iter_5.pdparam.abcdefgh.tmp"]
    for path in others:               # not temp files of this run's outputs: kept
        path.write_bytes(b"x")
    assert cli(workdir, "--ckpt_dir", str(folder), "--overwrite", "True", "--quiet") == 0
    err = capsys.readouterr().err
    assert "removed 1 temporary file(s)" in err
    assert "--overwrite: deleted the earlier run's 2 training checkpoint(s)" in err
    assert sorted(os.listdir(folder)) == sorted(
        ["cifar10_ckpt_iter_2.pdparam", "ddpm_cifar10_i2.pdparam", "ddpm_cifar10_i2_ema.pdparam"]
        + [p.name for p in others])

    # Resuming the finished run trains nothing and rewrites nothing.
    before = snapshot(folder)
    assert cli(workdir, "--ckpt_dir", str(folder), "--mode", "resume") == 0
    out = capsys.readouterr().out
    assert "already finished: it has 2 iterations and train.training_iters is 2" in out
    assert "trained" not in out
    assert snapshot(folder) == before
    # ... except an inference file that is missing, which is written.
    os.remove(folder / "ddpm_cifar10_i2.pdparam")
    assert cli(workdir, "--ckpt_dir", str(folder), "--mode", "resume") == 0
    assert "wrote the missing" in capsys.readouterr().out
    after = snapshot(folder)
    assert {k: v for k, v in after.items() if k != "ddpm_cifar10_i2.pdparam"} == \
        {k: v for k, v in before.items() if k != "ddpm_cifar10_i2.pdparam"}
    ckpt = load_checkpoint(str(folder / "cifar10_ckpt_iter_2.pdparam"))
    raw = load_checkpoint(str(folder / "ddpm_cifar10_i2.pdparam"))
    for k, v in ckpt["model"].items():
        np.testing.assert_array_equal(np.asarray(raw["model"][k]), v.numpy())


# -- a full disk ---------------------------------------------------------------------
def test_disk_full_mid_run_is_one_line_and_keeps_the_old_checkpoint(workdir):
    """A file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored) makes the checkpoint write fail
    with EFBIG, as a full disk fails it with ENOSPC."""
    folder = fresh_copy(workdir, "full")
    before = snapshot(folder)
    limit = 1 << 20                                   # a checkpoint is about 11 MB
    code = ("import resource, runpy, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
            "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-c", code, os.path.join(ROOT, "run_cifar10.py"),
                           "--config", "tiny.yaml", "--data_dir", "ds", "--ckpt_dir", "full",
                           "--mode", "resume", "--training_iters", "3", "--quiet"],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc)
    assert line.startswith("error: could not write full/cifar10_ckpt_iter_3.pdparam: File too "
                           "large (EFBIG)"), line
    assert "the last good checkpoint is full/cifar10_ckpt_iter_2.pdparam" in line
    assert snapshot(folder) == before                 # old files intact, no temp, no lock


# -- NaN and inf ---------------------------------------------------------------------
def test_all_finite_agrees_with_numpy():
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=s).astype("float32") for s in ((3, 4), (5,), (2, 2, 2))]
    tensors = lambda: [paddle.to_tensor(a) for a in arrays]
    assert all_finite(tensors()) is True
    for bad in (np.nan, np.inf, -np.inf):
        arrays[2][1, 0, 1] = bad
        assert all_finite(tensors()) is False and first_non_finite(dict(enumerate(arrays))) == 2
        arrays[2][1, 0, 1] = 0.0
    huge = [paddle.full([4], 3e38, "float32")]        # finite, but the sum overflows
    assert all_finite(huge) is True and np.isinf(float(huge[0].sum()))


def make_trainer(out, **train):
    cfg = tiny_config(str(out), iters=3)
    for k, v in train.items():
        setattr(cfg.train, k, v)
    paddle.seed(0)
    trainer = Trainer(cfg, build_model(cfg.model), GaussianDiffusion.from_config(cfg.diffusion),
                      FixedImages(), progress=False)
    return trainer


def test_an_update_that_makes_weights_nan_writes_nothing(tmp_path):
    """lr NaN: the loss stays finite, the first update makes every weight NaN."""
    trainer = make_trainer(tmp_path, lr=float("nan"))
    loader = build_loader(trainer.dataset, trainer.micro_batch, seed=0, infinite=True)
    with pytest.raises(TrainingDiverged, match="update of iteration 0 made weights NaN or "
                                               "infinite.*no checkpoint was written yet"):
        trainer.fit(loader)
    assert not os.path.exists(tmp_path / "ckpts") or not os.listdir(tmp_path / "ckpts")
    # A checkpoint holding NaN (written by an older version) is refused on resume.
    good = make_trainer(tmp_path / "good")
    good.fit(build_loader(good.dataset, good.micro_batch, seed=0, infinite=True))
    ckpt = load_checkpoint(good.last_saved)
    name = next(iter(ckpt["model_ema"]))
    ckpt["model_ema"][name] = paddle.full_like(ckpt["model_ema"][name], float("nan"))
    atomic_save(ckpt, str(tmp_path / "nan.pdparam"))
    with pytest.raises(CheckpointError, match="NaN or infinite weights \\(model_ema\\."):
        make_trainer(tmp_path / "r").load_state(load_checkpoint(str(tmp_path / "nan.pdparam")),
                                                str(tmp_path / "nan.pdparam"))


def test_infinite_optimizer_state_is_never_written_nor_resumed(tmp_path):
    """Gradients of 1e22 are finite, but Adam's second moment (1 - beta2) g^2 overflows
    float32: the weights stay finite (the update divides by sqrt(inf)) and that weight would
    never move again. Saving refuses it, and a checkpoint holding it (as an older version
    wrote it) is refused on resume. (Gradient clipping off: the clipped norm would be 1.)"""
    trainer = make_trainer(tmp_path, grad_clip=0.0)
    trainer.fit(build_loader(trainer.dataset, trainer.micro_batch, seed=0, infinite=True))
    saved = trainer.last_saved
    param = trainer.model.parameters()[0]
    (param * 1e22).sum().backward()   # every element's gradient is 1e22
    trainer.optim.step()
    assert all_finite(trainer.model.parameters())
    state = trainer.optim.state_dict()
    bad = first_non_finite(state)
    assert bad is not None and "moment2" in bad
    with pytest.raises(TrainingDiverged, match=f"optim.{bad} holds NaN or inf.*nothing was written"):
        trainer.save_checkpoint()
    assert trainer.last_saved == saved
    atomic_save(trainer.state_dict(), str(tmp_path / "inf_optim.pdparam"))
    with pytest.raises(CheckpointError, match="NaN or infinite optimizer state \\(optim\\..*moment2"):
        make_trainer(tmp_path / "r").load_state(load_checkpoint(str(tmp_path / "inf_optim.pdparam")),
                                                str(tmp_path / "inf_optim.pdparam"))


def test_resume_with_an_overflowing_lr_names_a_finite_last_checkpoint(workdir, capsys):
    """--lr 1e39 is finite in Python but overflows float32: the losses stay finite and an
    update (the first or the second: it depends on Adam's moments) makes weights non-finite.
    Nothing is written; the checkpoint named as the last good one holds finite weights."""
    folder = fresh_copy(workdir, "nan")
    before = snapshot(folder)
    assert cli(workdir, "--ckpt_dir", str(folder), "--mode", "resume", "--training_iters", "4",
               "--lr", "1e39", "--grad_clip", "0", "--quiet") == 2
    line = cli_error(capsys)
    assert re.search(r"the update of iteration [23] made weights NaN or infinite \(its loss "
                     r"was a finite [0-9.]+\)", line), line
    assert f"the last good checkpoint is {folder}/cifar10_ckpt_iter_2.pdparam" in line, line
    assert snapshot(folder) == before
    ckpt = load_checkpoint(str(folder / "cifar10_ckpt_iter_2.pdparam"))
    assert first_non_finite(ckpt["model"]) is None and first_non_finite(ckpt["model_ema"]) is None


# -- single PNGs cut short -----------------------------------------------------------
def test_a_signal_during_save_individual_leaves_it_marked_and_a_rerun_completes_it(
        workdir, monkeypatch, capsys):
    ema = str(workdir / "base" / "ddpm_cifar10_i2_ema.pdparam")
    args = ["--mode", "denoise", "--pretrained_path", ema, "--engine", "dygraph", "--sampler",
            "ddim", "--ddim_steps", "2", "--save_individual", "True", "--quiet"]
    folder = workdir / "sample" / "ddim_cifar10_test"
    real_save_png = images.save_png

    def save_png_then_sigterm(arr, path):
        if path.endswith("000002.png"):  # SIGTERM arrives as the third image is written
            os.kill(os.getpid(), signal.SIGTERM)
        return real_save_png(arr, path)
    monkeypatch.setattr(images, "save_png", save_png_then_sigterm)
    assert cli(workdir, *args) == 128 + signal.SIGTERM
    err = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
    assert err[-1].startswith("interrupted by SIGTERM (denoise)")
    # The grid and two PNGs were written; the marker says the folder is incomplete.
    assert sorted(os.listdir(folder)) == ["000000.png", "000001.png", images.INCOMPLETE_MARKER]
    monkeypatch.setattr(images, "save_png", real_save_png)
    assert cli(workdir, *args) == 0
    assert sorted(os.listdir(folder)) == [f"{i:06d}.png" for i in range(4)]
    grid = np.asarray(Image.open(workdir / "sample" / "sample_ddim_cifar10_test.png"))
    np.testing.assert_array_equal(np.asarray(Image.open(folder / "000003.png")), grid[36:68, 36:68])
    assert not glob.glob(str(folder / ".*.tmp"))
