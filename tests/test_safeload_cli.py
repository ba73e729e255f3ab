"""Every command that reads a pickle refuses a malicious one: exit status 2, one line naming
the file and the global, and the payload's marker file is never created. run_cifar10.py
runs as a subprocess; the other commands through their entry points in-process (cli.main,
ppddpm.convert's main), to keep the suite fast."""
import os
import tarfile

import numpy as np
import pytest

from helpers_cli import ROOT, in_process_cli, run
from helpers_data import make_fake_cifar10, py2_pickle
from ppddpm.evaluate.metrics.inception_weights import WEIGHTS_FILE
from test_safeload import evil_checkpoint, payloads

TINY = """\
base: {root}/configs/cifar10.yaml
model: {{ch: 32, ch_mult: [1], num_res_blocks: 1, attn_resolutions: [], dropout: 0.0}}
diffusion: {{num_diffusion_steps: 10}}
train: {{batchsize: 2, training_iters: 1}}
data: {{num_workers: 0, download: false}}
"""


def assert_refused(stderr, path, global_name):
    lines = [l for l in stderr.splitlines() if l.startswith("error:") or "error: " in l]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert "refused to load" in lines[0] and path in lines[0] and global_name in lines[0], stderr


def evil(tmp_path, style, name):
    marker = tmp_path / "marker.npy"
    payload, global_name = payloads(marker)[style]
    path = tmp_path / name
    path.write_bytes(evil_checkpoint(payload))
    return str(path), marker, global_name


def test_pretrained_path_subprocess(tmp_path):
    path, marker, global_name = evil(tmp_path, "os.system", "ddpm_cifar10_i800000_ema.pdparam")
    proc = run("run_cifar10.py", "--mode", "denoise", "--pretrained_path", path, cwd=tmp_path,
               expect=2)
    assert_refused(proc.stderr, path, global_name)
    assert not marker.exists()


def test_convert_original(tmp_path, capsys):
    from ppddpm.convert.__main__ import main as convert_main
    path, marker, global_name = evil(tmp_path, "numpy.save", "cifar10_ckpt_iter_40000.pdparam")
    out = tmp_path / "out.pdparam"
    assert convert_main(["--from", "original", "--src", path, "--out", str(out)]) == 2
    assert_refused(capsys.readouterr().err, path, global_name)
    assert not marker.exists() and not out.exists()


@pytest.fixture()
def cli(tmp_path, capsys, monkeypatch):
    """main() of a run script on the tiny config, in tmp_path: call(*argv) -> (status, stderr)."""
    return in_process_cli(tmp_path, capsys, monkeypatch, TINY.format(root=ROOT))


def test_resume_ckpt_path(tmp_path, cli):
    path, marker, global_name = evil(tmp_path, "exec", "cifar10_ckpt_iter_3.pdparam")
    status, err = cli("--mode", "resume", "--resume_ckpt_path", path)
    assert status == 2 and not marker.exists()
    assert_refused(err, path, global_name)


def test_inception_weights_pdparams(tmp_path, cli):
    path, marker, global_name = evil(tmp_path, "paddle.save", "x.pdparams")
    status, err = cli("--mode", "fid_stats", "--inception_weights", path)
    assert status == 2 and not marker.exists()
    assert_refused(err, path, global_name)


def test_inception_cache_beside_a_garbage_pth(tmp_path, cli):
    pth = tmp_path / WEIGHTS_FILE
    pth.write_bytes(os.urandom(300))
    path, marker, global_name = evil(tmp_path, "eval", WEIGHTS_FILE.replace(".pth", ".pdparams"))
    status, err = cli("--mode", "fid_stats", "--inception_weights", str(pth))
    assert status == 2 and not marker.exists()
    assert_refused(err, path, global_name)


@pytest.mark.parametrize("layout,style", [("tar", "os.system"), ("folder", "numpy.save")])
def test_cifar10_batch(tmp_path, cli, layout, style):
    marker = tmp_path / "marker.npy"
    payload, global_name = payloads(marker)[style]
    found = make_fake_cifar10(str(tmp_path / "ds"), 2, extracted=True)
    batch = os.path.join(found["path"], "data_batch_1")
    with open(batch, "wb") as fh:   # a real-format batch with one extra entry
        fh.write(py2_pickle({b"batch_label": b"training batch 1 of 5", b"labels": [0, 1],
                             b"data": np.zeros((2, 3072), np.uint8), b"filenames": payload}))
    if layout == "tar":
        with tarfile.open(tmp_path / "ds" / "cifar-10-python.tar.gz", "w:gz") as tf:
            tf.add(found["path"], arcname="cifar-10-batches-py")
        os.rename(found["path"], tmp_path / "elsewhere")
    status, err = cli("--mode", "train", "--data_dir", str(tmp_path / "ds"))
    assert status == 2 and not marker.exists()
    assert_refused(err, "data_batch_1", global_name)
