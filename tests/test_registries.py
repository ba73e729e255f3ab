"""One registry per list of names (config/names.py and the factories' own): the command
line's choices and help, the checks and the factories all read the same names."""
import argparse

import pytest

from ppddpm.cli.args import build_parser
from ppddpm.config import Config, ConfigError, ModelConfig, apply_overrides
from ppddpm.config.names import (ARCHS, CLASSIFIER_ARCHS, BETA_SCHEDULES, SAMPLER_TITLES, SAMPLERS, SOLVERS,
                                 SPACINGS)
from ppddpm.diffusion import GaussianDiffusion, get_beta_schedule
from ppddpm.engines import ENGINE_KINDS
from ppddpm.models import NETWORKS, build_model
from ppddpm.models.conv import BACKENDS
from ppddpm.runtime.device import DEVICES
from ppddpm.samplers import SAMPLER_CLASSES, build_sampler, sampler_description


def actions():
    return {a.dest: a for a in build_parser("t")._actions if isinstance(a, argparse.Action)}


def test_choices_are_the_registries():
    acts = actions()
    assert tuple(acts["engine"].choices) == ENGINE_KINDS
    assert tuple(acts["conv_backend"].choices) == BACKENDS
    assert tuple(acts["device"].choices) == DEVICES


@pytest.mark.parametrize("flag,names", [("sampler", SAMPLERS), ("skip", SPACINGS),
                                        ("spacing", SPACINGS),
                                        ("beta_schedule", [s for s in BETA_SCHEDULES if s != "jsd"])])
def test_help_lists_every_registered_name(flag, names):
    text = actions()[flag].help
    for name in names:
        assert name in text, (flag, name, text)


@pytest.mark.parametrize("key,registry", [("sample.sampler", SAMPLERS), ("sample.skip", SPACINGS),
                                          ("model.arch", ARCHS)])
def test_checks_refuse_a_name_outside_the_registry_and_list_it(key, registry):
    with pytest.raises(ConfigError) as err:
        apply_overrides(Config(), [f"{key}=nonesuch"])
    assert str(list(registry)) in str(err.value)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_architecture_name_builds_its_network(arch):
    cfg = ModelConfig(arch=arch, ch=32, ch_mult=[1, 2], num_res_blocks=1, attn_resolutions=[8],
                      resolution=16, num_steps=100)
    if arch in CLASSIFIER_ARCHS:   # x, t -> logits: needs their number
        cfg.num_classes, cfg.classifier_pool = 10, "adaptive"
    assert type(build_model(cfg)) is NETWORKS[arch]


@pytest.mark.parametrize("name", SAMPLERS)
def test_every_sampler_name_builds_its_sampler(name):
    diffusion = GaussianDiffusion(get_beta_schedule("linear", 100, 1e-4, 0.02))
    cfg = Config().sample
    cfg.sampler, cfg.num_steps = name, 10
    sampler = build_sampler(diffusion, cfg)
    assert type(sampler) is SAMPLER_CLASSES[name]
    assert sampler_description(sampler).startswith(SAMPLER_TITLES[name])
    assert (name in SOLVERS) == hasattr(sampler, "order")
