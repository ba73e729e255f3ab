"""Configuration: YAML with base inheritance, -o overrides, real booleans, clear errors."""
import os

import pytest

from ppddpm.config import (Config, ConfigError, apply_overrides, load_config, parse_bool,
                           validate)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_cifar10_yaml_is_the_papers_setup():
    cfg = load_config(os.path.join(ROOT, "configs", "cifar10.yaml"))
    m, d, t = cfg.model, cfg.diffusion, cfg.train
    assert (m.arch, m.ch, m.ch_mult, m.num_res_blocks, m.attn_resolutions, m.dropout) == \
        ("unet", 128, [1, 2, 2, 2], 2, [16], 0.1)
    assert (d.num_diffusion_steps, d.beta_schedule, d.beta_start, d.beta_end) == (1000, "linear", 1e-4, 0.02)
    assert (d.mean_type, d.var_type, d.loss_type) == ("eps", "fixed_large", "mse")
    assert (t.lr, t.warmup_steps, t.batchsize, t.training_iters, t.grad_clip, t.ema_decay) == \
        (2e-4, 5000, 128, 800000, 1.0, 0.9999)


def test_overrides_coerce_types():
    cfg = apply_overrides(Config(), ["model.ch_mult=[1,2]", "model.dropout=0.3", "data.random_flip=False",
                                     "train.lr=1e-3", "model.num_classes=10", "model.num_classes=none"])
    assert cfg.model.ch_mult == [1, 2] and cfg.model.dropout == 0.3 and cfg.data.random_flip is False
    assert cfg.train.lr == 1e-3 and cfg.model.num_classes is None


@pytest.mark.parametrize("text,value", [("False", False), ("false", False), ("0", False), ("no", False),
                                        ("True", True), ("1", True), ("yes", True)])
def test_booleans_are_real(text, value):
    assert parse_bool(text) is value


@pytest.mark.parametrize("override,needle", [
    ("model.chx=3", "unknown config key 'model.chx'"),
    ("modle.ch=3", "unknown config section 'modle'"),
    ("model.ch=abc", "model.ch='abc'"),
    ("diffusion.var_type=fixed_medium", "fixed_large"),
    ("data.random_flip=maybe", "boolean"),
    ("train.batchsize=0", "train.batchsize must be >= 1"),
    ("noequals", "section.key=value"),
])
def test_bad_overrides_name_the_value(override, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace("[", r"\[")):
        apply_overrides(Config(), [override])


def test_learned_variance_needs_learn_sigma():
    cfg = Config()
    cfg.diffusion.var_type = "learned_range"
    with pytest.raises(ConfigError, match="learn_sigma"):
        validate(cfg)
    cfg.model.learn_sigma = True
    validate(cfg)


def test_base_inheritance_and_derived_num_steps(tmp_path):
    (tmp_path / "child.yaml").write_text(f"base: {ROOT}/configs/cifar10.yaml\n"
                                         "model: {ch: 64}\ndiffusion: {num_diffusion_steps: 40}\n")
    cfg = load_config(str(tmp_path / "child.yaml"))
    assert cfg.model.ch == 64 and cfg.model.ch_mult == [1, 2, 2, 2]   # merged over the base
    assert cfg.model.num_steps == 40                                  # derived from T
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\n")
    with pytest.raises(ConfigError, match="includes itself"):
        load_config(str(tmp_path / "loop.yaml"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(str(tmp_path / "missing.yaml"))


def test_configs_from_files_tolerate_unknown_keys_with_a_warning():
    d = Config().to_dict()
    d["train"]["future_option"] = 1
    d["future_section"] = {"x": 1}
    with pytest.raises(ConfigError):
        Config.from_dict(d)
    with pytest.warns(UserWarning, match="train.future_option"):
        cfg = Config.from_dict(d, strict=False)
    assert cfg.to_dict()["model"] == Config().to_dict()["model"]


def test_date_like_values_stay_text(tmp_path):
    cfg = apply_overrides(Config(), ["sample.num_images=2000-40-50", "sample.sample_postfix=2020-01-02"])
    assert cfg.sample.num_images == "2000-40-50" and cfg.sample.sample_postfix == "2020-01-02"
    (tmp_path / "bad.yaml").write_text("sample: {num_images: 2000-40-50}\n")
    with pytest.raises(ConfigError, match="quote values"):
        load_config(str(tmp_path / "bad.yaml"))
