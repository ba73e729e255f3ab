"""diffusers UNet2DModel import: parity with diffusers' own outputs (committed fixture made
by tools/make_diffusers_fixture.py; no torch needed here) and clear refusals."""
import json
import os
import shutil

import numpy as np
import paddle
import pytest

from ppddpm.config import ConfigError
from ppddpm.convert.diffusers import convert_diffusers_unet, scheduler_info_from_diffusers
from ppddpm.io.safetensors_io import read_safetensors, write_safetensors
from ppddpm.errors import CheckpointError
from ppddpm.models import build_model

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "diffusers_tiny")
IO = np.load(os.path.join(FIXTURE, "io.npz"))
WEIGHTS = "diffusion_pytorch_model.safetensors"


def run_converted(src, y=None):
    state, cfg, sched = convert_diffusers_unet(src)
    model = build_model(cfg)
    model.set_state_dict({k: paddle.to_tensor(v) for k, v in state.items()})
    model.eval()
    yt = None if y is None else paddle.to_tensor(y)
    out = model(paddle.to_tensor(IO["x"]), paddle.to_tensor(IO["t"]), yt).numpy()
    return out, cfg, sched, state


def copy_fixture(tmp_path, config_edit=None, tensors_edit=None, dtype=None):
    dst = tmp_path / "ddpm"
    shutil.copytree(FIXTURE, dst)
    if config_edit:
        path = dst / "unet" / "config.json"
        cfg = json.loads(path.read_text())
        cfg.update(config_edit)
        path.write_text(json.dumps(cfg))
    if tensors_edit or dtype:
        tensors, meta = read_safetensors(str(dst / "unet" / WEIGHTS))
        if tensors_edit:
            tensors = tensors_edit(dict(tensors))
        write_safetensors(str(dst / "unet" / WEIGHTS), tensors, meta, dtype=dtype)
    return dst


def test_parity_with_diffusers_google_ddpm_semantics():
    out, cfg, sched, _ = run_converted(FIXTURE)
    assert (cfg.arch, cfg.ch, cfg.ch_mult, cfg.num_res_blocks, cfg.attn_resolutions) == \
        ("unet", 16, [1, 2], 1, [8])
    assert (cfg.norm_groups, cfg.norm_eps, cfg.time_freq_shift) == (8, 1e-6, 1.0)
    assert out.shape == IO["out"].shape and np.abs(IO["out"]).max() > 0.5
    assert np.abs(out - IO["out"]).max() <= 1e-4
    assert sched == {"beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02,
                     "num_diffusion_steps": 1000, "mean_type": "eps", "var_type": "fixed_large"}


def test_parity_with_diffusers_default_time_embedding(tmp_path):
    # flip_sin_to_cos=True, freq_shift=0 (diffusers' defaults), same weights
    src = copy_fixture(tmp_path, {"flip_sin_to_cos": True, "freq_shift": 0})
    out, cfg, _, _ = run_converted(src)
    assert cfg.time_freq_shift == 0.0
    assert np.abs(IO["out_flip"] - IO["out"]).max() > 0.1     # the variant is different
    assert np.abs(out - IO["out_flip"]).max() <= 1e-4


def test_parity_with_class_embedding(tmp_path):
    def add_classes(t):
        t["class_embedding.weight"] = IO["class_embedding"]
        return t
    src = copy_fixture(tmp_path, {"num_class_embeds": 5}, add_classes)
    out, cfg, _, state = run_converted(src, y=IO["y"])
    assert cfg.num_classes == 5
    assert state["label_emb.weight"].shape == (6, 64) and not state["label_emb.weight"][5].any()
    assert np.abs(out - IO["out_class"]).max() <= 1e-4


def test_old_attention_names_and_float32_weights(tmp_path):
    old = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}

    def rename(t):
        out = {}
        for k, v in t.items():
            for new, legacy in old.items():
                k = k.replace(f".{new}.", f".{legacy}.")
            out[k] = v.astype(np.float32)
        return out
    src = copy_fixture(tmp_path, tensors_edit=rename)
    raw, _ = read_safetensors(str(src / "unet" / WEIGHTS))
    assert any(".query." in k for k in raw) and raw["conv_in.weight"].dtype == np.float32
    out, _, _, _ = run_converted(src)
    assert np.abs(out - IO["out"]).max() <= 1e-4


def test_folder_layouts(tmp_path):
    # unet/ given directly: the scheduler is found in ../scheduler
    _, _, sched, s1 = run_converted(os.path.join(FIXTURE, "unet"))
    assert sched["var_type"] == "fixed_large"
    # everything at top level
    flat = tmp_path / "flat"
    shutil.copytree(os.path.join(FIXTURE, "unet"), flat)
    shutil.copy(os.path.join(FIXTURE, "scheduler", "scheduler_config.json"), flat)
    state, _, sched2 = convert_diffusers_unet(str(flat))
    assert sched2 == sched and all(np.array_equal(state[k], s1[k]) for k in s1)
    # no scheduler at all: empty scheduler info
    os.remove(flat / "scheduler_config.json")
    assert convert_diffusers_unet(str(flat))[2] == {}


def test_learned_variance_halves_out_channels(tmp_path):
    def six_out(t):
        t["conv_out.weight"] = np.concatenate([t["conv_out.weight"]] * 2, axis=0)
        t["conv_out.bias"] = np.concatenate([t["conv_out.bias"]] * 2, axis=0)
        return t
    src = copy_fixture(tmp_path, {"out_channels": 6}, six_out)
    path = src / "scheduler" / "scheduler_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "variance_type": "learned_range"}))
    out, cfg, sched, _ = run_converted(src)
    assert (cfg.learn_sigma, cfg.out_channels, sched["var_type"]) == (True, 3, "learned_range")
    assert out.shape == (2, 6, 16, 16)
    assert np.abs(out[:, :3] - IO["out"]).max() <= 1e-4


def test_scheduler_mapping():
    info = scheduler_info_from_diffusers({"beta_schedule": "scaled_linear", "beta_start": 0.00085,
                                          "beta_end": 0.012, "num_train_timesteps": 500,
                                          "prediction_type": "sample",
                                          "variance_type": "fixed_small_log"})
    assert info == {"beta_schedule": "quad", "beta_start": 0.00085, "beta_end": 0.012,
                    "num_diffusion_steps": 500, "mean_type": "x0", "var_type": "fixed_small"}
    assert scheduler_info_from_diffusers({"beta_schedule": "squaredcos_cap_v2"})["beta_schedule"] \
        == "cosine"
    with pytest.raises(ConfigError, match="v_prediction"):
        scheduler_info_from_diffusers({"prediction_type": "v_prediction"})
    with pytest.raises(ConfigError, match="trained_betas"):
        scheduler_info_from_diffusers({"trained_betas": [0.1, 0.2]})
    with pytest.raises(ConfigError, match="rescale_betas_zero_snr"):
        scheduler_info_from_diffusers({"rescale_betas_zero_snr": True})


# ---- refusals ------------------------------------------------------------------------

def test_mismatched_unknown_and_missing_tensors_are_listed(tmp_path):
    def damage(t):
        t["conv_in.weight"] = np.zeros((16, 3, 5, 5), np.float32)
        t["extra_block.weight"] = np.zeros((7, 2), np.float32)
        del t["conv_out.bias"]
        return t
    src = copy_fixture(tmp_path, tensors_edit=damage)
    with pytest.raises(CheckpointError) as err:
        convert_diffusers_unet(str(src))
    msg = str(err.value)
    assert "conv_in.weight" in msg and "[16, 3, 3, 3]" in msg and "[16, 3, 5, 5]" in msg
    assert "extra_block.weight [7, 2]" in msg
    assert "conv_out.bias [3]" in msg
    assert WEIGHTS in msg


def test_weights_for_another_config_are_refused(tmp_path):
    src = copy_fixture(tmp_path, {"layers_per_block": 2})
    with pytest.raises(CheckpointError, match=r"(?s)missing .*down\.0\.block\.1\.conv1\.weight"):
        convert_diffusers_unet(str(src))


@pytest.mark.parametrize("cut", ["truncated", "header", "length"])
def test_corrupt_safetensors_are_refused(tmp_path, cut):
    src = copy_fixture(tmp_path)
    path = src / "unet" / WEIGHTS
    data = path.read_bytes()
    if cut == "truncated":
        data = data[:len(data) // 2]
    elif cut == "header":
        data = data[:8] + b"{not json" + data[17:]
    else:
        data = (10 ** 12).to_bytes(8, "little") + data[8:]
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        convert_diffusers_unet(str(src))


def test_missing_files_and_bin_only_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="not a folder"):
        convert_diffusers_unet(str(tmp_path / "nope"))
    with pytest.raises(CheckpointError, match="config.json"):
        convert_diffusers_unet(str(tmp_path))
    src = copy_fixture(tmp_path)
    os.replace(src / "unet" / WEIGHTS, src / "unet" / "diffusion_pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"safetensors.*\.bin|\.bin.*safetensors"):
        convert_diffusers_unet(str(src))


@pytest.mark.parametrize("edit,match", [({"attention_head_dim": 5}, "attention_head_dim=5"),
                                        ({"downsample_padding": 2}, "downsample_padding=2"),
                                        ({"resnet_time_scale_shift": "spatial"},
                                         "resnet_time_scale_shift='spatial'"),
                                        ({"attn_norm_num_groups": 4}, "attn_norm_num_groups=4"),
                                        ({"add_attention": False}, "add_attention=False"),
                                        ({"class_embed_type": "timestep"}, "class_embed_type"),
                                        ({"down_block_types": ["ResnetDownsampleBlock2D",
                                                               "AttnDownBlock2D"]},
                                         "down_block_types has .'ResnetDownsampleBlock2D'"),
                                        ({"down_block_types": ["DownBlock2D", "DownBlock2D"]},
                                         "mirrored")])
def test_unsupported_unet_settings_are_config_errors(tmp_path, edit, match):
    src = copy_fixture(tmp_path, edit)
    with pytest.raises(ConfigError, match=match):
        convert_diffusers_unet(str(src))


# ---- the safetensors reader/writer ---------------------------------------------------

def test_safetensors_round_trip_all_dtypes(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {"f64": rng.standard_normal((3, 2)), "f32": rng.standard_normal(5).astype(np.float32),
               "f16": rng.standard_normal((2, 2)).astype(np.float16),
               "i64": np.arange(6, dtype=np.int64).reshape(2, 3), "scalar": np.float32(2.5)}
    path = str(tmp_path / "a.safetensors")
    write_safetensors(path, tensors, {"format": "pt"})
    back, meta = read_safetensors(path)
    assert sorted(back) == sorted(tensors) and meta == {"format": "pt"}
    for k, v in tensors.items():
        assert back[k].dtype == np.asarray(v).dtype and np.array_equal(back[k], v), k
    with open(path, "rb") as fh:   # the header is real safetensors JSON
        n = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(n))
    begin, end = header["f16"].pop("data_offsets")
    assert header["f16"] == {"dtype": "F16", "shape": [2, 2]} and end - begin == 8


def _handmade_safetensors(path, name, dtype, shape, raw):
    """A one-tensor file written from the format's spec: 8-byte LE header length, JSON, data."""
    header = json.dumps({name: {"dtype": dtype, "shape": shape,
                                "data_offsets": [0, len(raw)]}}).encode()
    path.write_bytes(len(header).to_bytes(8, "little") + header + raw)


def test_safetensors_bf16(tmp_path):
    # bfloat16 is the high half of a float32: 1.0, -2.5, 0.15625, 2^100, 0.0
    exact = np.array([1.0, -2.5, 0.15625, 2.0 ** 100, 0.0], np.float32)
    path = tmp_path / "b.safetensors"
    _handmade_safetensors(path, "w", "BF16", [5], (exact.view(np.uint32) >> 16).astype("<u2").tobytes())
    back, _ = read_safetensors(str(path))
    assert back["w"].dtype == np.float32 and np.array_equal(back["w"], exact)
