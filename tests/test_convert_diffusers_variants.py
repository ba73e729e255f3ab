"""diffusers UNet2DModel settings beyond the DDPM UNet that ppddpm's UNet expresses
(downsample_padding 1, attention heads of attention_head_dim channels, scale-shift res
blocks, class embeddings, attention at other levels): parity with diffusers' own outputs on
random weights (tests/fixtures/diffusers_variants, tools/make_diffusers_fixture.py --what
variants), through the dynamic graph and the exported predictor."""
import os

import numpy as np
import paddle
import pytest

from ppddpm.convert import convert_diffusers
from ppddpm.convert.diffusers import convert_diffusers_unet
from ppddpm.engines import make_engine
from ppddpm.models import build_model

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "diffusers_variants")

# name -> the ModelConfig settings the converter must read off config.json
EXPECTED = {
    "example": dict(downsample_padding=1, num_head_channels=8, use_scale_shift_norm=False,
                    mid_attn_norm=True, time_freq_shift=0.0, num_classes=None),
    "scale_shift": dict(downsample_padding=1, num_head_channels=8, use_scale_shift_norm=True,
                        mid_attn_norm=False, num_classes=5),
    "scale_shift_attn_groups": dict(downsample_padding=0, num_head_channels=-1,
                                    use_scale_shift_norm=True, mid_attn_norm=True),
    "attn_first": dict(ch_mult=[1, 1, 2], num_res_blocks=2, attn_resolutions=[16],
                       num_head_channels=4),
}


def converted(name):
    state, cfg, _ = convert_diffusers_unet(os.path.join(FIXTURES, name))
    model = build_model(cfg)
    model.set_state_dict({k: paddle.to_tensor(v) for k, v in state.items()})
    model.eval()
    return model, cfg, dict(np.load(os.path.join(FIXTURES, name, "io.npz")))


def forward(model, io):
    y = io.get("y")
    with paddle.no_grad():
        return model(paddle.to_tensor(io["x"]), paddle.to_tensor(io["t"]),
                     None if y is None else paddle.to_tensor(y)).numpy()


def assert_close(got, want):
    assert np.abs(want).max() > 0.5
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parity_with_diffusers(name):
    model, cfg, io = converted(name)
    for key, value in EXPECTED[name].items():
        assert getattr(cfg, key) == value, key
    assert_close(forward(model, io), io["out"])


@pytest.mark.parametrize("use_sdpa", [False, True])
def test_multi_head_attention_with_and_without_the_fused_kernel(use_sdpa):
    model, _, io = converted("example")
    for layer in model.sublayers():
        if hasattr(layer, "use_sdpa"):
            assert layer.heads > 1
            layer.use_sdpa = use_sdpa
    assert_close(forward(model, io), io["out"])


@pytest.mark.parametrize("kind, name", [("inference", "scale_shift"), ("onnxruntime", "scale_shift"),
                                        ("onnxruntime", "example")])
def test_exported_engines_run_the_new_options(tmp_path, monkeypatch, kind, name):
    monkeypatch.setenv("PPDDPM_ENGINE_CACHE", str(tmp_path))
    model, cfg, io = converted(name)
    engine = make_engine(model, kind, image_shape=[3, 16, 16])
    y = None if "y" not in io else paddle.to_tensor(io["y"])
    out = engine(paddle.to_tensor(io["x"]), paddle.to_tensor(io["t"]), y)
    out = out.numpy() if hasattr(out, "numpy") else np.asarray(out)
    assert_close(out, io["out"])


def test_inference_file_keeps_the_options(tmp_path):
    from ppddpm.convert import write_inference
    from ppddpm.convert.pretrained import load_pretrained
    path = write_inference(convert_diffusers(os.path.join(FIXTURES, "scale_shift")),
                           str(tmp_path / "s.safetensors"))
    model, _, cfg = load_pretrained(path)
    io = dict(np.load(os.path.join(FIXTURES, "scale_shift", "io.npz")))
    assert cfg.model.use_scale_shift_norm and not cfg.model.mid_attn_norm
    assert_close(forward(model, io), io["out"])


@pytest.mark.parametrize("edit, match", [
    (dict(num_head_channels=0), "model.num_head_channels must be -1"),
    (dict(downsample_padding=2), r"model.downsample_padding must be in \[0, 1\]"),
    (dict(arch="fpn", use_scale_shift_norm=True), "option of arch unet"),
    (dict(num_head_channels=24), "does not divide the 64 channels"),
])
def test_the_new_model_keys_are_checked(edit, match):
    from ppddpm.config import Config, ConfigError, validate
    cfg = Config()
    cfg.model.ch, cfg.model.ch_mult, cfg.model.attn_resolutions = 32, [1, 2], [16]
    for key, value in edit.items():
        setattr(cfg.model, key, value)
    with pytest.raises(ConfigError, match=match):
        validate(cfg)
        build_model(cfg.model)
