"""Inference files and load_pretrained; strict loading of weights."""
import os
import re

import numpy as np
import paddle
import pytest

from helpers_legacy import (T_TINY, TINY_FPN, TINY_UNET, forward_np, probe_input, random_state,
                            tiny, tiny_betas)
from ppddpm.config import Config, ModelConfig, validate
from ppddpm.errors import CheckpointError
from ppddpm.models import build_model
from ppddpm.models.state import MAX_LISTED, load_state_strict
from ppddpm.convert.pretrained import load_pretrained, save_inference_file

UNET_SMALL = dict(arch="unet", ch=32, ch_mult=[1, 2], num_res_blocks=1, attn_resolutions=[4],
                  dropout=0.0, resolution=8)


def small_config(**model):
    cfg = Config()
    cfg.model = ModelConfig(**{**UNET_SMALL, **model})
    cfg.diffusion.num_diffusion_steps = T_TINY
    cfg.data.image_size = cfg.model.resolution
    validate(cfg)  # derives model.num_steps from the diffusion, as loading a config does
    return cfg


def legacy_config():
    cfg = small_config()
    cfg.model = ModelConfig(**TINY_UNET)
    validate(cfg)
    return cfg


def test_inference_file_round_trip_official_unet(tmp_path):
    cfg = small_config()
    net = build_model(cfg.model)
    state = random_state(net, 5)
    path = tmp_path / "ckpts" / "ddpm_test_i7_ema.pdparam"       # folder does not exist yet
    save_inference_file(str(path), state, tiny_betas(), {"note": "x"}, cfg)
    assert os.listdir(path.parent) == [path.name]                 # no temp file left behind
    raw = paddle.load(str(path), return_numpy=True)
    assert set(raw) == {"model", "betas", "options", "config", "version"}
    assert raw["betas"].dtype == np.float64 and raw["config"] == cfg.to_dict()

    model, diffusion, loaded_cfg = load_pretrained(str(path))
    assert loaded_cfg.model == cfg.model and not model.training
    assert diffusion.num_timesteps == T_TINY
    net.set_state_dict(state)
    x, t = probe_input()
    np.testing.assert_allclose(forward_np(model, x, t), forward_np(net, x, t), atol=1e-6)


def test_save_overwrites_atomically_and_accepts_tensors(tmp_path):
    cfg = legacy_config()
    net = tiny("unet")
    path = str(tmp_path / "f.pdparam")
    save_inference_file(path, random_state(net, 1), tiny_betas(), {}, cfg)
    save_inference_file(path, net.state_dict(), tiny_betas(), {}, cfg.to_dict())
    assert os.listdir(tmp_path) == ["f.pdparam"]
    model, _, _ = load_pretrained(path)
    x, t = probe_input()
    np.testing.assert_allclose(forward_np(model, x, t), forward_np(net, x, t), atol=1e-6)
    assert model.data_range == (0.0, 1.0)


def test_training_checkpoint_uses_ema_weights(tmp_path):
    cfg = legacy_config()
    net = tiny("unet")
    raw_w, ema_w = random_state(net, 1), random_state(net, 2)
    path = str(tmp_path / "cifar10_ckpt_iter_7.pdparam")
    paddle.save({"model": raw_w, "model_ema": ema_w, "optim": {}, "lr_sched": {}, "ckpt_idx": 6,
                 "betas": tiny_betas(), "options": {}, "config": cfg.to_dict(),
                 "version": "0.1.0"}, path)
    model, _, _ = load_pretrained(path)
    net.set_state_dict(ema_w)
    x, t = probe_input()
    np.testing.assert_allclose(forward_np(model, x, t), forward_np(net, x, t), atol=1e-6)


def test_missing_corrupt_and_malformed_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_pretrained(str(tmp_path / "nope.pdparam"))
    good = str(tmp_path / "good.pdparam")
    save_inference_file(good, random_state(tiny("unet"), 0), tiny_betas(), {}, legacy_config())
    data = open(good, "rb").read()
    bad = tmp_path / "truncated.pdparam"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_pretrained(str(bad))
    paddle.save([1, 2, 3], str(tmp_path / "list.pdparam"))
    with pytest.raises(CheckpointError, match="not a dict"):
        load_pretrained(str(tmp_path / "list.pdparam"))
    paddle.save({"betas": tiny_betas(), "options": {}}, str(tmp_path / "nomodel.pdparam"))
    with pytest.raises(CheckpointError, match="no 'model' entry"):
        load_pretrained(str(tmp_path / "nomodel.pdparam"))


def test_architecture_mismatch_names_arch_and_tensors(tmp_path):
    # Weights of a ch-64 official UNet under a config that says ch 32.
    cfg = small_config()
    wrong = build_model(ModelConfig(**{**UNET_SMALL, "ch": 64}))
    path = str(tmp_path / "mismatch.pdparam")
    save_inference_file(path, random_state(wrong, 0), tiny_betas(), {}, cfg)
    with pytest.raises(CheckpointError) as info:
        load_pretrained(path)
    msg = str(info.value)
    assert "unet from the config stored in the file" in msg
    assert "model expects [32," in msg and "checkpoint has [64," in msg
    # Legacy weights saved under an official-UNet config: names differ entirely.
    save_inference_file(path, random_state(tiny("unet"), 0), tiny_betas(), {}, cfg)
    with pytest.raises(CheckpointError, match=r"missing from the checkpoint[\s\S]*unexpected"):
        load_pretrained(path)


def test_map_config_checks_the_expected_network(tmp_path):
    path = str(tmp_path / "f.pdparam")
    save_inference_file(path, random_state(tiny("unet"), 0), tiny_betas(), {}, legacy_config())
    model, _, _ = load_pretrained(path, map_config=ModelConfig(**{**TINY_UNET, "dropout": 0.3}))
    with pytest.raises(CheckpointError, match=r"ch: file has 32, expected 64"):
        load_pretrained(path, map_config=ModelConfig(**{**TINY_UNET, "ch": 64}))
    with pytest.raises(CheckpointError, match=r"arch: file has 'legacy_unet', expected 'unet'"):
        load_pretrained(path, map_config=small_config())


def test_betas_must_match_the_config(tmp_path):
    path = str(tmp_path / "f.pdparam")
    save_inference_file(path, random_state(tiny("unet"), 0), np.linspace(1e-4, 0.02, 20), {},
                        legacy_config())
    with pytest.raises(CheckpointError, match="20 betas"):
        load_pretrained(path)


def test_load_state_strict_accepts_numpy_float64_and_tensors():
    net, src = tiny("fpn"), tiny("fpn")
    state64 = {k: v.astype(np.float64) for k, v in random_state(src, 4).items()}
    load_state_strict(net, state64, "test")
    assert all(p.dtype == paddle.float32 for p in net.parameters())
    src.set_state_dict({k: v.astype(np.float32) for k, v in state64.items()})
    x, t = probe_input()
    np.testing.assert_allclose(forward_np(net, x, t), forward_np(src, x, t), atol=1e-6)
    other = tiny("fpn")
    load_state_strict(other, src.state_dict(), "tensors")
    np.testing.assert_allclose(forward_np(other, x, t), forward_np(src, x, t), atol=1e-6)


def test_load_state_strict_lists_offenders_and_truncates():
    net = tiny("unet")
    state = random_state(net, 0)
    before = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    state.pop("in_conv.bias")
    state["extra.weight"] = np.zeros((3, 4), np.float32)
    state["out_conv.2.weight"] = np.zeros((3, 32, 1, 1), np.float32)
    with pytest.raises(CheckpointError) as info:
        load_state_strict(net, state, "my.pdparam")
    msg = str(info.value)
    assert msg.startswith("my.pdparam does not match")
    assert "1 missing, 1 unexpected and 1 mis-shaped" in msg
    assert "in_conv.bias [32]" in msg and "extra.weight [3, 4]" in msg
    assert "out_conv.2.weight: model expects [3, 32, 3, 3], checkpoint has [3, 32, 1, 1]" in msg
    assert "LegacyUNet (arch=legacy_unet" in msg
    # nothing was loaded
    assert all(np.array_equal(before[k], v.numpy()) for k, v in net.state_dict().items())
    # FPN weights into the UNet: hundreds of offenders, truncated per kind
    with pytest.raises(CheckpointError) as info:
        load_state_strict(net, random_state(tiny("fpn"), 0), "fpn.pdparam")
    msg = str(info.value)
    missing, unexpected, wrong = map(int, re.search(
        r"(\d+) missing, (\d+) unexpected and (\d+) mis-shaped", msg).groups())
    assert missing > MAX_LISTED and unexpected > MAX_LISTED and wrong > MAX_LISTED
    for n in (missing, unexpected, wrong):
        assert f"... and {n - MAX_LISTED} more" in msg
    assert len(msg.splitlines()) < 3 * MAX_LISTED + 10


def test_map_config_ignores_fields_the_legacy_nets_do_not_read(tmp_path):
    path = str(tmp_path / "f.pdparam")
    save_inference_file(path, random_state(tiny("fpn"), 0), tiny_betas(), {},
                        {**legacy_config().to_dict(), "model": dict(TINY_FPN)})
    expected = ModelConfig(**{**TINY_FPN, "norm_eps": 1e-5, "attn_resolutions": [16],
                              "dropout": 0.1})
    model, _, cfg = load_pretrained(path, map_config=expected)
    assert cfg.model.arch == "legacy_fpn"
    with pytest.raises(CheckpointError, match="num_res_blocks: file has 2, expected 1"):
        load_pretrained(path, map_config=ModelConfig(**{**TINY_FPN, "num_res_blocks": 1}))
