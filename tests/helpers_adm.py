"""The adm parity fixture (tools/make_adm_fixture.py): its cases as ppddpm configs and
their random upstream-layout weights."""
from __future__ import annotations

import json
import os

import numpy as np

from legacy_weights import fill_weights
from ppddpm.config import Config, validate
from ppddpm.convert.adm import to_ppddpm_state
from ppddpm.convert.adm_flags import flags_config, integer_widths, parse_flags
from ppddpm.models import build_model
from ppddpm.models.state import load_state_strict

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "adm_parity.npz")


def load_fixture():
    data = dict(np.load(FIXTURE))
    meta = json.loads(bytes(data.pop("meta")).decode())
    return data, meta


def case_config(kwargs: dict, size: int, diffusion=None, classifier: bool = False,
                rescale: bool = False) -> Config:
    """Upstream's UNetModel / EncoderUNetModel keyword arguments -> a ppddpm Config."""
    cfg = Config()
    m = cfg.model
    m.arch = "adm_classifier" if classifier else "adm"
    m.ch, m.ch_mult, model_ch = integer_widths(kwargs["channel_mult"], kwargs["model_channels"])
    m.time_embed_ch = None if model_ch == m.ch else model_ch
    m.resolution = cfg.data.image_size = size
    m.num_res_blocks, m.dropout = kwargs["num_res_blocks"], kwargs.get("dropout", 0.0)
    m.attn_resolutions = [size // ds for ds in kwargs["attention_resolutions"]]
    m.num_heads = kwargs.get("num_heads", 1)
    m.num_heads_upsample = kwargs.get("num_heads_upsample", -1)
    m.num_head_channels = kwargs.get("num_head_channels", -1)
    m.use_scale_shift_norm = kwargs.get("use_scale_shift_norm", False)
    m.resblock_updown = kwargs.get("resblock_updown", False)
    m.use_new_attention_order = kwargs.get("use_new_attention_order", False)
    m.norm_eps = 1e-5
    if classifier:
        m.num_classes, m.classifier_pool = kwargs["out_channels"], kwargs["pool"]
    else:
        m.num_classes = kwargs.get("num_classes")
        m.learn_sigma = kwargs["out_channels"] == 6
    d = cfg.diffusion
    d.var_type = "learned_range" if m.learn_sigma else "fixed_large"
    d.loss_type = "hybrid" if m.learn_sigma else "mse"
    if diffusion:
        T = diffusion["steps"]
        d.num_diffusion_steps, d.beta_schedule = T, diffusion["noise_schedule"]
        d.beta_start, d.beta_end = 1e-4 * 1000 / T, 0.02 * 1000 / T
        m.rescale_timesteps = rescale and diffusion.get("rescale_timesteps", False)
        if not diffusion.get("rescale_learned_sigmas", False) and m.learn_sigma:
            d.loss_type = "mse_vb"
    validate(cfg)
    return cfg


def build_with_upstream_weights(cfg: Config, shapes):
    """The adm network of cfg holding fill_weights(upstream's names and shapes)."""
    state = fill_weights([(k, tuple(s)) for k, s in shapes])
    model = build_model(cfg.model)
    load_state_strict(model, to_ppddpm_state(state, cfg), "fixture")
    model.eval()
    return model


FAMILY = {"improved_diffusion": "improved-diffusion", "guided_diffusion": "guided-diffusion",
          "guided_classifier": "guided-diffusion"}


def flags_case_config(case: dict, rescale: bool = True) -> Config:
    """A fixture case made from upstream's flags, read by the converter's flag parser."""
    family, classifier = FAMILY[case["package"]], case["package"] == "guided_classifier"
    cfg = flags_config(parse_flags(case["flags"], family, classifier), family, classifier)
    if not rescale:
        cfg.model.rescale_timesteps = False
    return cfg


def fixture_case(meta: dict, name: str, size: int, rescale: bool) -> Config:
    """The Config of any fixture case: from its flags or its constructor arguments."""
    for group in ("flag_cases", "flag_classifiers"):
        if name in meta[group]:
            return flags_case_config(meta[group][name], rescale)
    if name in meta["classifiers"]:
        return case_config(meta["classifiers"][name]["kwargs"], size, classifier=True)
    case = meta["cases"][name]
    return case_config(case["kwargs"], size, case["diffusion"], rescale=rescale)


def case_shapes(meta: dict, name: str):
    for group in ("flag_cases", "flag_classifiers", "classifiers", "cases"):
        if name in meta[group]:
            return meta[group][name]["shapes"]
    raise KeyError(name)
