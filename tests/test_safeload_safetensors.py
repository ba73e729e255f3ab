""".safetensors inference files: written by save_inference_file / python -m ppddpm.convert /
--mode convert, loaded by --pretrained_path, bit-identical to the .pdparam route; damaged
files give one line, not a traceback."""
import json
import os

import numpy as np
import paddle
import pytest

from helpers_cli import ROOT, in_process_cli
from helpers_legacy import T_TINY, forward_np, probe_input, tiny, tiny_betas, write_original_file
from ppddpm.config import load_config
from ppddpm.convert.__main__ import main as convert_main
from ppddpm.io.safetensors_io import FORMAT, read_inference_safetensors, read_safetensors
from ppddpm.diffusion import GaussianDiffusion
from ppddpm.errors import CheckpointError
from ppddpm.models import build_model
from ppddpm.convert.pretrained import load_pretrained, save_inference_file
from ppddpm.io.weights import atomic_save, load_checkpoint

TINY = """\
base: {root}/configs/cifar10.yaml
model: {{ch: 32, ch_mult: [1, 2], num_res_blocks: 1, attn_resolutions: [], dropout: 0.0}}
diffusion: {{num_diffusion_steps: 4, beta_end: 0.2}}
sample: {{num_images: 2-1-2, batchsize: 2}}
"""


def test_inference_file_round_trip_is_bit_identical(tmp_path):
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(TINY.format(root=ROOT))
    cfg = load_config(str(cfg_path))
    paddle.seed(1)
    net = build_model(cfg.model)
    state = {k: v.numpy() + np.float32(0.01) * i for i, (k, v) in enumerate(net.state_dict().items())}
    betas = np.random.default_rng(0).uniform(1e-4, 0.2, 4)          # not a round schedule
    options = {"lr": 2e-4, "note": "x", "flag": True, "scalar": np.float32(0.5)}
    path = tmp_path / "w.safetensors"
    save_inference_file(str(path), state, betas, options, cfg)
    assert os.listdir(tmp_path) == ["tiny.yaml", "w.safetensors"]    # atomic: no temp left
    tensors, meta = read_safetensors(str(path))                        # a plain safetensors file
    assert meta["format"] == FORMAT and sorted(tensors) == sorted(state)
    for k, v in state.items():
        assert tensors[k].dtype == v.dtype and tensors[k].tobytes() == v.tobytes(), k
    back = read_inference_safetensors(str(path))
    assert back["config"] == cfg.to_dict() and back["betas"].dtype == np.float64
    assert back["betas"].tobytes() == betas.tobytes()                 # exact through JSON
    assert back["options"] == {"lr": 2e-4, "note": "x", "flag": True, "scalar": 0.5}

    model, diffusion, loaded = load_pretrained(str(path))
    assert loaded.model == cfg.model and diffusion.betas.tobytes() == betas.tobytes()
    for k, v in model.state_dict().items():
        assert v.numpy().tobytes() == state[k].tobytes(), k
    # the content, not the name, decides: the same bytes named .pdparam load too
    os.replace(path, tmp_path / "w.pdparam")
    assert load_pretrained(str(tmp_path / "w.pdparam"))[2].model == cfg.model


def test_convert_writes_safetensors_equal_to_pdparam(tmp_path, capsys):
    src = tmp_path / "orig.pdparam"
    _, ema_state = write_original_file(src, "unet", training=True)
    for out in ("o.pdparam", "o.safetensors"):
        assert convert_main(["--from", "original", "--src", str(src), "--out", str(tmp_path / out)]) == 0
    a = load_checkpoint(str(tmp_path / "o.pdparam"), return_numpy=True)
    b = read_inference_safetensors(str(tmp_path / "o.safetensors"))
    assert a["config"] == b["config"] and a["options"] == b["options"] and a["version"] == b["version"]
    assert a["betas"].tobytes() == b["betas"].tobytes() == tiny_betas().tobytes()
    assert sorted(a["model"]) == sorted(b["model"]) == sorted(ema_state)
    for k in ema_state:
        assert a["model"][k].tobytes() == b["model"][k].tobytes() == ema_state[k].tobytes(), k
    model, diffusion, _ = load_pretrained(str(tmp_path / "o.safetensors"))
    src_net = tiny("unet")
    src_net.set_state_dict(ema_state)
    x, t = probe_input()
    np.testing.assert_array_equal(forward_np(model, x, t), forward_np(src_net, x, t))
    assert diffusion.num_timesteps == T_TINY and getattr(model, "data_range", None) is not None


@pytest.fixture()
def cli(tmp_path, capsys, monkeypatch):
    """main() of a run script on the tiny config, in tmp_path: call(*argv) -> (status, stderr)."""
    return in_process_cli(tmp_path, capsys, monkeypatch, TINY.format(root=ROOT))


def test_mode_convert_to_safetensors_then_sample_from_it(tmp_path, cli):
    cfg = load_config(str(tmp_path / "tiny.yaml"))
    paddle.seed(0)
    state = build_model(cfg.model).state_dict()
    betas = GaussianDiffusion.from_config(cfg.diffusion).betas
    atomic_save({"model": state, "model_ema": state, "ckpt_idx": 4, "betas": betas, "options": {},
                 "config": cfg.to_dict()}, str(tmp_path / "ckpts" / "cifar10_ckpt_iter_5.pdparam"))
    assert cli("--mode", "convert", "--convert_format", "safetensors")[0] == 0
    assert cli("--mode", "convert")[0] == 0
    made = sorted(os.listdir(tmp_path / "ckpts"))
    assert made == ["cifar10_ckpt_iter_5.pdparam", "ddpm_cifar10_i5_ema.pdparam",
                    "ddpm_cifar10_i5_ema.safetensors"]
    pngs = []
    for name in made[1:]:
        postfix = name.rsplit(".", 1)[1]
        status, err = cli("--mode", "denoise", "--engine", "dygraph", "--pretrained_path",
                          str(tmp_path / "ckpts" / name), "--sample_postfix", postfix)
        assert status == 0, err
        pngs.append((tmp_path / "sample" / f"sample_{postfix}.png").read_bytes())
    assert pngs[0] == pngs[1]            # same weights, same seed: the same images


def _damaged(tmp_path, kind):
    """A ppddpm safetensors file, then damaged in one way."""
    path = tmp_path / f"{kind}.safetensors"
    w = np.arange(8, dtype=np.float32)
    header = {"w": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32]}}
    body = w.tobytes()
    if kind == "overflow":
        header["w"]["shape"] = [2 ** 62, 2 ** 62, 16]
    elif kind == "truncated":
        body = body[:20]
    raw = json.dumps(header).encode()
    if kind == "header":
        raw = b"{not json" + raw[9:]
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + body)
    return path


@pytest.mark.parametrize("kind,needle", [("overflow", "overflow"), ("truncated", "not fully covered"),
                                         ("header", "JSON"), ("foreign", "not a ppddpm inference file")])
def test_damaged_safetensors_give_one_line(tmp_path, cli, kind, needle):
    path = _damaged(tmp_path, kind)
    with pytest.raises(CheckpointError, match=needle):
        load_pretrained(str(path))
    status, err = cli("--mode", "denoise", "--pretrained_path", str(path))
    assert status == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0], err
