"""`python -m ppddpm.convert --from ddim`: DDIM's code's checkpoints onto ppddpm's UNet,
against DDIM's own PyTorch network (tests/fixtures/ddim_tiny, written by
tools/make_ddim_fixture.py from ermongroup/ddim's models/diffusion.py; no torch here), the
published configurations recognised from their shapes, and the refusals."""
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import paddle
import pytest

from helpers_cli import ROOT
from helpers_inception import write_pth
from ppddpm.config import ModelConfig
from ppddpm.convert.__main__ import main as convert_main
from ppddpm.convert.ddim import ddim_model_config, map_state
from ppddpm.convert.pretrained import load_pretrained
from ppddpm.io.pth_reader import read_pth_tree
from ppddpm.models.unet import UNet

FIX = os.path.join(ROOT, "tests", "fixtures", "ddim_tiny")
CKPT = os.path.join(FIX, "ddim_ckpt.pth")


@pytest.fixture(scope="module")
def io():
    return dict(np.load(os.path.join(FIX, "io.npz")))


def convert(tmp_path, src, *extra, name="out.pdparam"):
    out = tmp_path / name
    assert convert_main(["--from", "ddim", "--src", str(src), "--out", str(out), *extra]) == 0
    return str(out)


def outputs(path, io):
    model, diffusion, cfg = load_pretrained(path)
    with paddle.no_grad():
        got = model(paddle.to_tensor(io["x"]), paddle.to_tensor(io["t"])).numpy()
    return got, diffusion, cfg


def assert_close(got, want):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("weights, key", [("ema", "ema_out"), ("raw", "raw_out")])
def test_ddims_training_checkpoint_matches_its_pytorch_network(tmp_path, io, weights, key):
    path = convert(tmp_path, CKPT, "--weights", weights)
    got, diffusion, cfg = outputs(path, io)
    assert_close(got, io[key])
    m = cfg.model
    assert (m.ch, m.ch_mult, m.num_res_blocks, m.attn_resolutions, m.resolution) == \
        (32, [1, 1], 1, [16], 32)
    assert diffusion.num_timesteps == 1000 and np.isclose(diffusion.betas[-1], 0.02)


def test_a_flat_state_dict_as_hos_converted_files_and_safetensors_out(tmp_path, io):
    """Ho's models as DDIM's --use_pretrained loads them: torch.save(state_dict)."""
    ema = read_pth_tree(CKPT)[4]
    flat = tmp_path / "model-790000.ckpt"
    write_pth(str(flat), {k[len("module."):]: v.astype(np.float32) for k, v in ema.items()})
    got, _, _ = outputs(convert(tmp_path, flat, name="ho.safetensors"), io)
    assert_close(got, io["ema_out"])


@pytest.mark.parametrize("name, ch_mult, resolution, dropout, var_type, dataset", [
    ("cifar10", [1, 2, 2, 2], 32, 0.1, "fixed_large", "cifar10"),
    ("celeba", [1, 2, 2, 2, 4], 64, 0.1, "fixed_large", "celeba64"),
    ("church", [1, 1, 2, 2, 4, 4], 256, 0.0, "fixed_small", "folder"),
])
def test_published_configurations_are_recognised_and_fill_ppddpms_unet(name, ch_mult, resolution,
                                                                        dropout, var_type, dataset):
    with open(os.path.join(FIX, "shapes.json")) as fh:
        shapes = json.load(fh)[name]
    cfg, known = ddim_model_config({k: tuple(v) for k, v in shapes.items()}, name)
    assert (cfg.ch, cfg.ch_mult, cfg.num_res_blocks, cfg.attn_resolutions, cfg.resolution,
            cfg.dropout) == (128, ch_mult, 2, [16], resolution, dropout)
    assert (known.var_type, known.dataset) == (var_type, dataset)
    # every DDIM tensor lands on one ppddpm tensor of the same size (zero-copy stand-ins)
    mapped = map_state({k: np.broadcast_to(np.float32(0), v) for k, v in shapes.items()})
    with paddle.LazyGuard():
        expected = {k: list(v.shape) for k, v in UNet(cfg).state_dict().items()}
    assert {k: list(v.shape) for k, v in mapped.items()} == expected


def one_line(capsys, *words):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err


def test_refusals_exit_2_in_one_line(tmp_path, capsys):
    out = str(tmp_path / "o.pdparam")
    assert convert_main(["--from", "ddim", "--src", str(tmp_path / "none.ckpt"), "--out", out]) == 2
    one_line(capsys, "none.ckpt", "does not exist")
    other = tmp_path / "other.pth"
    write_pth(str(other), {"conv.weight": np.zeros((2, 2), np.float32)})
    assert convert_main(["--from", "ddim", "--src", str(other), "--out", out]) == 2
    one_line(capsys, "not a network of DDIM's code", "conv.weight")
    ema = {k[len("module."):]: v for k, v in read_pth_tree(CKPT)[4].items()}
    nocov = {k: v for k, v in ema.items() if "downsample" not in k}
    write_pth(str(other), nocov)
    assert convert_main(["--from", "ddim", "--src", str(other), "--out", out]) == 2
    one_line(capsys, "resamp_with_conv: false")
    write_pth(str(other), {**ema, "logvar": np.zeros(1000, np.float32)})
    assert convert_main(["--from", "ddim", "--src", str(other), "--out", out]) == 2
    one_line(capsys, "bayesian", "logvar")
    assert not os.path.exists(out)


def test_missing_tensor_is_named(tmp_path, capsys):
    ema = {k[len("module."):]: v for k, v in read_pth_tree(CKPT)[4].items()}
    del ema["mid.block_2.conv2.weight"]
    src = tmp_path / "cut.ckpt"
    write_pth(str(src), ema)
    assert convert_main(["--from", "ddim", "--src", str(src), "--out",
                         str(tmp_path / "o.pdparam")]) == 2
    assert "mid.block_2.conv2.weight" in capsys.readouterr().err


class Call:
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def test_a_malicious_pickle_never_runs(tmp_path, capsys):
    """The legacy torch layout: magic, protocol, system info, then the object's pickle."""
    marker = tmp_path / "marker"
    src = tmp_path / "evil.ckpt"
    with open(src, "wb") as fh:
        for part in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(part, fh, protocol=2)
        pickle.dump([{"w": Call(os.system, f"touch {marker}")}, {}, 0, 0], fh, protocol=2)
    assert convert_main(["--from", "ddim", "--src", str(src), "--out",
                         str(tmp_path / "o.pdparam")]) == 2
    one_line(capsys, "evil.ckpt", "system")
    assert not marker.exists()


def test_converts_where_torch_cannot_be_imported(tmp_path):
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "torch.py").write_text("raise ImportError('torch is blocked for this test')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocker), ROOT]), OMP_NUM_THREADS="1")
    out = tmp_path / "o.pdparam"
    code = ("import sys\n"
            "try:\n    import torch\nexcept ImportError:\n    pass\n"
            "else:\n    sys.exit('torch imported')\n"
            "from ppddpm.convert.__main__ import main\n"
            f"sys.exit(main(['--from', 'ddim', '--src', {CKPT!r}, '--out', {str(out)!r}]))\n")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out.exists()


def test_the_converted_file_samples_a_grid_on_the_command_line(tmp_path, monkeypatch):
    from ppddpm.cli import main
    path = convert(tmp_path, CKPT)
    monkeypatch.chdir(tmp_path)
    assert main(os.path.join(ROOT, "configs", "cifar10.yaml"), "test", argv=[
        "--mode", "denoise", "--pretrained_path", path, "--sampler", "ddim", "--ddim_steps", "2",
        "--num_images", "2-1-2", "--sample_postfix", "ddim_tiny", "--quiet"]) == 0
    assert (tmp_path / "sample" / "sample_ddim_tiny.png").exists()
