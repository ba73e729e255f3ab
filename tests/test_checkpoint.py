import glob
import os
import random
import signal
import subprocess
import sys
import textwrap

import numpy as np
import paddle
import pytest

from ppddpm.errors import CheckpointError
from ppddpm.io import weights
from ppddpm.train import checkpoint as ck

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _good_obj():
    return {"model": {"w": paddle.to_tensor(np.arange(6, dtype=np.float32).reshape(2, 3))},
            "betas": np.linspace(1e-4, 0.02, 10), "ckpt_idx": 41, "options": {"lr": 2e-4}}


def test_atomic_save_roundtrip_and_no_temp(tmp_path):
    path = weights.atomic_save(_good_obj(), str(tmp_path / "sub" / "cifar10_ckpt_iter_42.pdparam"))
    d = weights.load_checkpoint(path)
    np.testing.assert_array_equal(d["model"]["w"].numpy(), np.arange(6).reshape(2, 3))
    assert d["betas"].dtype == np.float64 and d["ckpt_idx"] == 41 and d["options"]["lr"] == 2e-4
    assert os.listdir(tmp_path / "sub") == ["cifar10_ckpt_iter_42.pdparam"]
    w = weights.load_checkpoint(path, return_numpy=True)["model"]["w"]
    assert isinstance(w, np.ndarray) and w.dtype == np.float32


def test_failed_save_keeps_old_file_and_removes_temp(tmp_path):
    path = str(tmp_path / "x.pdparam")
    weights.atomic_save(_good_obj(), path)
    with pytest.raises(Exception):
        weights.atomic_save({"model": {}, "bad": lambda: 0}, path)      # lambdas do not pickle
    assert weights.load_checkpoint(path)["ckpt_idx"] == 41
    assert os.listdir(tmp_path) == ["x.pdparam"]


def test_load_checkpoint_errors(tmp_path):
    good = str(tmp_path / "good.pdparam")
    weights.atomic_save(_good_obj(), good)
    raw = open(good, "rb").read()
    cases = {"missing.pdparam": None, "trunc.pdparam": raw[: len(raw) // 2],
             "empty.pdparam": b"", "junk.pdparam": os.urandom(500)}
    for name, content in cases.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError) as err:
            weights.load_checkpoint(str(tmp_path / name))
        assert name in str(err.value)
    paddle.save([1, 2], str(tmp_path / "list.pdparam"))
    with pytest.raises(CheckpointError, match="not a dict"):
        weights.load_checkpoint(str(tmp_path / "list.pdparam"))
    with pytest.raises(CheckpointError, match="folder"):
        weights.load_checkpoint(str(tmp_path))


def test_names():
    assert ck.train_ckpt_path("ck", "cifar10", 40000) == os.path.join(
        "ck", "cifar10_ckpt_iter_40000.pdparam")
    assert ck.inference_path("ck", "cifar10", 800000) == os.path.join(
        "ck", "ddpm_cifar10_i800000_ema.pdparam")
    assert ck.inference_path("ck", "celeba_hq", 5, ema=False) == os.path.join(
        "ck", "ddpm_celeba_hq_i5.pdparam")


def test_list_latest_prune(tmp_path):
    d = str(tmp_path)
    for it in (5, 100, 40, 7):
        open(ck.train_ckpt_path(d, "cifar10", it), "wb").close()
    for name in (".cifar10_ckpt_iter_200.pdparam.abc123.tmp", "celeba_hq_ckpt_iter_300.pdparam",
                 "cifar10_ckpt_iter_x.pdparam", "ddpm_cifar10_i900_ema.pdparam"):
        open(os.path.join(d, name), "wb").close()
    os.mkdir(os.path.join(d, "cifar10_ckpt_iter_999.pdparam"))     # a folder is not a checkpoint
    found = ck.list_checkpoints(d, "cifar10")
    assert [it for it, _ in found] == [5, 7, 40, 100]               # numeric, not string order
    assert found[0][1] == ck.train_ckpt_path(d, "cifar10", 5)
    assert ck.latest_checkpoint(d, "cifar10") == ck.train_ckpt_path(d, "cifar10", 100)
    assert ck.latest_checkpoint(d, "celeba_hq").endswith("celeba_hq_ckpt_iter_300.pdparam")
    assert ck.prune_checkpoints(d, "cifar10", 0) == []
    removed = ck.prune_checkpoints(d, "cifar10", 2)
    assert removed == [ck.train_ckpt_path(d, "cifar10", 5), ck.train_ckpt_path(d, "cifar10", 7)]
    assert [it for it, _ in ck.list_checkpoints(d, "cifar10")] == [40, 100]
    assert os.path.exists(os.path.join(d, "celeba_hq_ckpt_iter_300.pdparam"))
    assert ck.list_checkpoints(str(tmp_path / "nope"), "cifar10") == []
    assert ck.latest_checkpoint(str(tmp_path / "nope"), "cifar10") is None


def test_rng_state_roundtrip_through_checkpoint(tmp_path):
    random.seed(1), np.random.seed(2), paddle.seed(3)
    path = weights.atomic_save({"rng": ck.get_rng_state()}, str(tmp_path / "r.pdparam"))
    first = (random.random(), np.random.rand(3), paddle.rand([3]).numpy(),
             paddle.randn([2]).numpy())
    ck.set_rng_state(weights.load_checkpoint(path)["rng"])
    again = (random.random(), np.random.rand(3), paddle.rand([3]).numpy(),
             paddle.randn([2]).numpy())
    assert first[0] == again[0]
    for a, b in zip(first[1:], again[1:]):
        np.testing.assert_array_equal(a, b)


# The child overwrites a good checkpoint with a ~24 MB one and pauses at a chosen
# point; the parent SIGKILLs it there. "midwrite": inside paddle.save's pickling,
# after the big array is on disk but before the dict is complete. "precommit":
# after the temp file is complete, just before os.replace.
_CHILD = textwrap.dedent("""
    import glob, os, sys, time
    import numpy as np
    from ppddpm.io import weights
    from ppddpm.train import checkpoint as ck
    path, mode = sys.argv[1], sys.argv[2]

    def pause(tmp):
        tmp = tmp or glob.glob(os.path.join(os.path.dirname(path), ".*.tmp"))[0]
        print("READY", os.path.getsize(tmp), flush=True)
        time.sleep(120)

    class Stall:
        def __reduce__(self):
            pause(None)
            return (int, ())

    obj = {"model": {"a": np.ones(6_000_000, np.float32)}, "ckpt_idx": 99}
    if mode == "midwrite":
        obj["zzz"] = Stall()
    else:
        weights._before_commit = pause
    weights.atomic_save(obj, path)
    print("FINISHED", flush=True)
""")


@pytest.mark.parametrize("mode", ["midwrite", "precommit"])
def test_sigkill_during_save_keeps_good_checkpoint(tmp_path, mode):
    path = ck.train_ckpt_path(str(tmp_path), "cifar10", 40)
    weights.atomic_save(_good_obj(), path)
    before = open(path, "rb").read()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO)
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, path, mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("READY"), (line, proc.stderr.read() if proc.poll() else "")
        tmp_size = int(line.split()[1])
        assert tmp_size > 1_000_000          # the new file really is partly/fully written
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert open(path, "rb").read() == before
    assert weights.load_checkpoint(path)["ckpt_idx"] == 41
    leftovers = glob.glob(str(tmp_path / ".*.tmp"))
    assert len(leftovers) == 1                               # the killed write's temp file
    assert ck.list_checkpoints(str(tmp_path), "cifar10") == [(40, path)]
