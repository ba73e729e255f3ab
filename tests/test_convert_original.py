"""python -m ppddpm.convert on files of the original reproduction (and ppddpm training files)."""
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

from helpers_legacy import (T_TINY, TINY_UNET, forward_np, probe_input, random_state, tiny,
                            tiny_betas, write_original_file)
from ppddpm.config import Config, ModelConfig
from ppddpm.convert import convert_original, convert_training
from ppddpm.convert.__main__ import main
from ppddpm.errors import CheckpointError
from ppddpm.convert.pretrained import load_pretrained

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "ppddpm.convert", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("kind,training", [("unet", True), ("fpn", False)])
def test_cli_round_trip_original_files(tmp_path, kind, training):
    src = tmp_path / "orig.pdparam"
    model_state, ema_state = write_original_file(src, kind, training)
    out = tmp_path / "out" / "ddpm_ppddpm_ema.pdparam"
    res = run_cli("--from", "original", "--src", str(src), "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "wrote" in res.stdout and "legacy_" + kind in res.stdout

    raw = paddle.load(str(out), return_numpy=True)
    assert set(raw) == {"model", "betas", "options", "config", "version"}
    assert raw["config"]["model"]["arch"] == "legacy_" + kind
    np.testing.assert_array_equal(raw["betas"], tiny_betas())
    assert raw["options"]["beta_schedule"] == "linear"
    assert raw["options"]["converted_from"]["entry"] == ("model_ema" if training else "model")
    expected = ema_state if training else model_state
    assert sorted(raw["model"]) == sorted(expected)
    for k, v in expected.items():
        np.testing.assert_array_equal(raw["model"][k], v, err_msg=k)

    model, diffusion, cfg = load_pretrained(str(out))
    src_net = tiny(kind)
    src_net.set_state_dict(expected)
    x, t = probe_input()
    np.testing.assert_allclose(forward_np(model, x, t), forward_np(src_net, x, t), atol=1e-6)
    assert diffusion.num_timesteps == T_TINY


def test_cli_refuses_truncated_file(tmp_path):
    src = tmp_path / "orig.pdparam"
    write_original_file(src, "unet", training=False)
    data = src.read_bytes()
    src.write_bytes(data[: len(data) // 3])
    out = tmp_path / "out.pdparam"
    res = run_cli("--from", "original", "--src", str(src), "--out", str(out))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert f"{src}" in res.stderr and "truncated or corrupt" in res.stderr
    assert not out.exists()


def test_cli_refuses_mismatched_file(tmp_path):
    src = tmp_path / "orig.pdparam"
    net = tiny("unet")
    state = random_state(net, 0)
    state["ups.1.conv2.3.weight"] = np.zeros((64, 64, 1, 1), np.float32)   # was [64,64,3,3]
    paddle.save({"model": state, "options": {}, "betas": tiny_betas()}, str(src))
    out = tmp_path / "out.pdparam"
    res = run_cli("--from", "original", "--src", str(src), "--out", str(out))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert "ppddpm.convert: error: " in res.stderr
    assert ("ups.1.conv2.3.weight: model expects [64, 64, 3, 3], checkpoint has [64, 64, 1, 1]"
            in res.stderr)
    assert not out.exists()


def test_cli_help_and_bad_arguments():
    res = run_cli("--help")
    assert res.returncode == 0
    for word in ("--from", "original", "diffusers", "training", "--src", "--out", "EMA"):
        assert word in res.stdout
    res = run_cli("--from", "keras", "--src", "x", "--out", "y")
    assert res.returncode == 2 and "invalid choice" in res.stderr


def test_main_reports_wrong_source_kind(tmp_path, capsys):
    src = tmp_path / "orig.pdparam"
    write_original_file(src, "fpn", training=True)
    assert main(["--from", "training", "--src", str(src), "--out", str(tmp_path / "o")]) == 2
    assert "use `--from original`" in capsys.readouterr().err
    assert main(["--from", "original", "--src", str(tmp_path / "missing.pdparam"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["--from", "diffusers", "--src", str(src), "--out", str(tmp_path / "o")]) == 2
    assert "must be a diffusers model folder" in capsys.readouterr().err


def test_raw_weights_option_and_unknown_keys(tmp_path):
    src = tmp_path / "orig.pdparam"
    model_state, _ = write_original_file(src, "unet", training=True)
    result = convert_original(str(src), use_ema=False)
    for k, v in model_state.items():
        np.testing.assert_array_equal(result["model"][k], v)
    paddle.save({"model": {"encoder.weight": np.zeros(3, np.float32)}, "betas": tiny_betas()},
                str(src))
    with pytest.raises(CheckpointError, match="neither the original UNet"):
        convert_original(str(src))


def test_training_checkpoint_to_ema_inference_file(tmp_path):
    cfg = Config()
    cfg.model = ModelConfig(**TINY_UNET)
    cfg.diffusion.num_diffusion_steps = T_TINY
    net = tiny("unet")
    raw_w, ema_w = random_state(net, 1), random_state(net, 2)
    src = tmp_path / "cifar10_ckpt_iter_7.pdparam"
    paddle.save({"model": raw_w, "model_ema": ema_w, "optim": {}, "lr_sched": {},
                 "ckpt_idx": 6, "betas": tiny_betas(), "options": {"lr": 2e-4},
                 "config": cfg.to_dict(), "version": "0.1.0"}, str(src))
    out = tmp_path / "ddpm_cifar10_i7_ema.pdparam"
    assert main(["--from", "training", "--src", str(src), "--out", str(out)]) == 0
    raw = paddle.load(str(out), return_numpy=True)
    assert raw["config"] == cfg.to_dict() and raw["options"]["lr"] == 2e-4
    for k, v in ema_w.items():
        np.testing.assert_array_equal(raw["model"][k], v)
    assert "optim" not in raw
    result = convert_training(str(src), use_ema=False)
    for k, v in raw_w.items():
        np.testing.assert_array_equal(result["model"][k], v)


def test_from_diffusers_writes_an_inference_file_with_the_reference_output(tmp_path):
    # The networks engineer's tiny diffusers fixture: weights + scheduler + torch outputs.
    src = os.path.join(ROOT, "tests", "fixtures", "diffusers_tiny")
    out = tmp_path / "ddpm_tiny.pdparam"
    assert main(["--from", "diffusers", "--src", src, "--out", str(out)]) == 0
    model, diffusion, cfg = load_pretrained(str(out))
    assert cfg.model.arch == "unet" and cfg.diffusion.var_type == "fixed_large"
    assert cfg.data.image_size == cfg.model.resolution == 16
    np.testing.assert_allclose(diffusion.betas, np.linspace(1e-4, 0.02, 1000))
    io = np.load(os.path.join(src, "io.npz"))
    np.testing.assert_allclose(forward_np(model, io["x"], io["t"]), io["out"], atol=1e-4)
