"""ppddpm.io.safeload: malicious pickles are refused before anything in them runs, and every
real file (trainer checkpoints, inference files, the original reproduction's files,
paddle.save state dicts, Inception caches, CIFAR-10 batches) loads exactly as
paddle.load / pickle gave it (paddle.load is the oracle)."""
import collections
import os
import pickle

import numpy as np
import paddle
import pytest

from dist_workers import FixedImages, tiny_config
from helpers_data import make_fake_cifar10, py2_pickle
from helpers_legacy import write_original_file
from ppddpm.data import build_loader
from ppddpm.data.cifar10 import decode_batch
from ppddpm.diffusion import GaussianDiffusion
from ppddpm.models import build_model
from ppddpm.io.safeload import UnsafeFileError, load_paddle_file, load_pickle
from ppddpm.io.weights import atomic_save, load_checkpoint
from ppddpm.train.checkpoint import get_rng_state
from ppddpm.train.trainer import Trainer


class Call:
    """Pickles as ``func(*args)``: what a malicious file holds."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def payloads(marker):
    """{style: (object whose unpickling creates ``marker``, the global the error names)}."""
    m = str(marker)
    create = f"open({m!r}, 'w').close()"
    return {
        "os.system": (Call(os.system, f"touch {m}"), f"{os.system.__module__}.system"),
        "eval": (Call(eval, create), "builtins.eval"),
        "exec": (Call(exec, create), "builtins.exec"),
        "numpy.save": (Call(np.save, m, np.zeros(1)), "numpy.save"),       # allowed module, other name
        "paddle.save": (Call(paddle.save, {"a": 1}, m), "paddle.framework.io.save"),
    }


STYLES = list(payloads("x"))


def evil_checkpoint(payload, protocol=4) -> bytes:
    """A checkpoint-shaped dict (weights in paddle's tensor form) carrying ``payload``."""
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    return pickle.dumps({"model": collections.OrderedDict(w=("w", w)), "betas": np.linspace(0, 1, 3),
                         "options": {"lr": 2e-4, "note": payload}, "ckpt_idx": 1}, protocol=protocol)


def assert_one_line_refusal(exc, name, global_name):
    text = str(exc)
    assert "\n" not in text and name in text and global_name in text, text


@pytest.mark.parametrize("style", STYLES)
def test_payloads_are_refused_before_they_run(tmp_path, style):
    marker = tmp_path / "marker.npy"
    payload, global_name = payloads(marker)[style]
    for protocol in (2, 4):
        path = tmp_path / f"evil_p{protocol}.pdparam"
        path.write_bytes(evil_checkpoint(payload, protocol))
        for load in (load_paddle_file, load_checkpoint):
            with pytest.raises(UnsafeFileError) as err:
                load(str(path))
            assert_one_line_refusal(err.value, str(path), global_name)
        with pytest.raises(UnsafeFileError) as err:
            decode_batch(py2_pickle({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0],
                                     b"x": payload}), "data_batch_1")
        assert_one_line_refusal(err.value, "data_batch_1", global_name)
        assert not marker.exists()
    pickle.loads(path.read_bytes())       # the same bytes do run code under plain pickle
    assert marker.exists()


def test_only_paddles_exact_tensor_eval_is_allowed(tmp_path):
    """Paddle pickles a DenseTensor as eval('data', {'data': array}); nothing else passes."""
    a = np.arange(4.0)
    np.testing.assert_array_equal(load_pickle(pickle.dumps(Call(eval, "data", {"data": a}))), a)
    for args in (("data", {"data": a, "x": 1}), ("data + 1", {"data": a}), ("data", {"data": 1})):
        with pytest.raises(UnsafeFileError, match="builtins.eval"):
            load_pickle(pickle.dumps(Call(eval, *args)), source="f.pdparam")


def test_numpy_object_arrays_are_refused_numbers_are_not():
    hand_made = Call(np.ndarray.__reduce__(np.zeros(1))[0], np.ndarray, (0,), "O")
    for value in (np.array([1, "a"], dtype=object), np.array([os.system], dtype=object), hand_made):
        with pytest.raises(UnsafeFileError, match="numpy.dtype of Python objects"):
            load_pickle(pickle.dumps({"v": value}), source="f.pdparam")
    back = load_pickle(pickle.dumps({"v": np.float64(2.5), "i": np.int32(-3)}))
    assert type(back["v"]) is np.float64 and back["v"] == 2.5
    assert type(back["i"]) is np.int32 and back["i"] == -3


# ---- real files load as paddle.load gives them -----------------------------------------

def same(a, b, where="."):
    """Deep equality with types: tensors by dtype, shape, values and (file-given) name."""
    assert type(a) is type(b), (where, type(a), type(b))
    if isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b), where
    elif isinstance(a, paddle.Tensor):
        auto = a.name.startswith("generated_tensor") and b.name.startswith("generated_tensor")
        assert a.dtype == b.dtype and a.shape == b.shape and (a.name == b.name or auto), where
        assert np.array_equal(a.numpy(), b.numpy()), where
    elif type(a).__name__ == "GeneratorState":
        assert a.__getstate__() == b.__getstate__(), where
    else:
        assert a == b, where


def assert_loads_like_paddle(path):
    for return_numpy in (False, True):
        same(load_paddle_file(str(path), return_numpy), paddle.load(str(path), return_numpy=return_numpy))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A real training run's checkpoint and inference files (2 iterations, tiny UNet)."""
    out = tmp_path_factory.mktemp("train")
    cfg = tiny_config(str(out))
    cfg.train.ckpt_interval = 2
    paddle.seed(0)
    trainer = Trainer(cfg, build_model(cfg.model), GaussianDiffusion.from_config(cfg.diffusion),
                      FixedImages(), progress=False)
    trainer.fit(build_loader(trainer.dataset, trainer.micro_batch, seed=0, infinite=True))
    return out / "ckpts"


def test_trainer_files_load_as_paddle_load_gives_them(trained):
    names = sorted(os.listdir(trained))
    assert any("_ckpt_iter_" in n for n in names) and any(n.endswith("_ema.pdparam") for n in names)
    for name in names:
        assert_loads_like_paddle(trained / name)
    ckpt = load_checkpoint(str(trained / [n for n in names if "_ckpt_iter_" in n][0]))
    assert {"model", "model_ema", "optim", "rng", "config", "betas"} <= set(ckpt)


def test_original_and_plain_paddle_files_load_as_paddle_load_gives_them(tmp_path):
    write_original_file(tmp_path / "orig_train.pdparam", "unet", training=True)
    write_original_file(tmp_path / "orig_inf.pdparam", "fpn", training=False)
    net = paddle.nn.Sequential(paddle.nn.Linear(3, 4), paddle.nn.BatchNorm1D(4))
    opt = paddle.optimizer.Adam(parameters=net.parameters())
    net(paddle.randn([2, 3])).mean().backward()
    opt.step()
    for protocol in (2, 3, 4):   # protocol 2 stores bytes through _codecs.encode
        paddle.save(net.state_dict(), str(tmp_path / f"sd_p{protocol}.pdparams"), protocol=protocol)
    paddle.save({"model": net.state_dict(), "optim": opt.state_dict(), "rng": get_rng_state(),
                 "dense": {"t": net[0].weight.value().get_tensor()}},    # eval('data') form
                str(tmp_path / "mixed.pdparam"))
    atomic_save({"state": {k: v.numpy() for k, v in net.state_dict().items()},
                 "source_sha256": "ab" * 32}, str(tmp_path / "pt_inception-x.pdparams"))
    for name in sorted(os.listdir(tmp_path)):
        assert_loads_like_paddle(tmp_path / name)


def test_big_parameter_slices_are_joined_like_paddle_load(tmp_path):
    """paddle.save (protocol 2/3) stores an array over 1 GiB flat in pieces "key@@.i" listed
    under "UnpackBigParamInfor@@" (paddle/framework/io_utils.py). The 1 GiB threshold is not
    an argument, so the layout is written here by hand and paddle.load is the oracle."""
    big = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    flat = big.ravel()
    obj = {"small": np.ones(2, np.float32), "big@@.0": flat[:10], "big@@.1": flat[10:20],
           "big@@.2": flat[20:],
           "UnpackBigParamInfor@@": {"big": {"OriginShape": big.shape,
                                             "slices": ["big@@.0", "big@@.1", "big@@.2"]}},
           "StructuredToParameterName@@": {"small": "linear_0.b_0", "big": "linear_0.w_0"}}
    path = tmp_path / "sliced.pdparams"
    path.write_bytes(pickle.dumps(obj, protocol=2))
    assert_loads_like_paddle(path)
    got = load_paddle_file(str(path))
    assert sorted(got) == ["big", "small"] and got["big"].name == "linear_0.w_0"
    np.testing.assert_array_equal(got["big"].numpy(), big)


def test_cifar10_batches_decode_as_pickle_gives_them(tmp_path):
    found = make_fake_cifar10(str(tmp_path), 3, extracted=True)
    raw = open(os.path.join(found["path"], "data_batch_2"), "rb").read()
    data, labels = decode_batch(raw, "data_batch_2")
    np.testing.assert_array_equal(data, found["train_data"][3:6])
    np.testing.assert_array_equal(labels, found["train_labels"][3:6])
    meta = open(os.path.join(found["path"], "batches.meta"), "rb").read()
    same(load_pickle(meta), pickle.loads(meta, encoding="latin1"))
