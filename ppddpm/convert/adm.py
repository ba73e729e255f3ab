"""improved-diffusion and guided-diffusion ``.pt`` files -> ppddpm inference files.

The adm networks keep upstream's parameter names, so the mapping is small: Linear weights
are transposed (PyTorch stores [out, in], Paddle [in, out]), the label embedding gets the
"no label" row ppddpm's conditional networks have (zeros: upstream's models have none),
and half-precision tensors are stored in float32. Before the full name-and-shape check,
the settings the weights show are compared with the flags, so a wrong flag is named.
The ``.pt`` is read by ppddpm's PyTorch-free reader (io/pth_reader.py), whose unpickler
builds only tensors and plain containers.
"""
from __future__ import annotations

import re
from typing import Dict, Mapping

import numpy as np

from ..config import Config, ConfigError
from ..diffusion.schedules import check_schedule
from ..errors import CheckpointError
from ..io.pth_reader import read_pth
from ..version import __version__
from .adm_flags import flags_config, parse_flags

FAMILIES = ("improved-diffusion", "guided-diffusion")
_LINEAR = re.compile(r"(^time_embed\.[02]|\.emb_layers\.1)\.weight$")


def is_classifier_state(state: Mapping) -> bool:
    """guided-diffusion's classifiers have a down path and a head, no up path."""
    return "input_blocks.0.0.weight" in state and not any(k.startswith("output_blocks.")
                                                          for k in state)


def to_ppddpm_state(state: Mapping, cfg: Config) -> Dict[str, np.ndarray]:
    """Upstream's state dict -> the adm network's (float32; see the module docstring)."""
    spatial = cfg.model.arch == "adm_classifier" and cfg.model.classifier_pool.startswith("spatial")
    out = {}
    for key, value in state.items():
        arr = np.asarray(value)
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float32)
        if _LINEAR.search(key) or (spatial and key.startswith("out.") and arr.ndim == 2):
            arr = np.ascontiguousarray(arr.T)
        if key == "label_emb.weight":
            arr = np.concatenate([arr, np.zeros_like(arr[:1])], axis=0)
        out[key] = arr
    return out


def _mismatch(flag: str, have, weights_say, key: str) -> ConfigError:
    return ConfigError(f"--flags {flag} {have} does not match the weights: {key} says "
                       f"{weights_say}; set {flag} {weights_say}")


def check_against_flags(state: Mapping, cfg: Config, classifier: bool) -> None:
    """The settings visible in the weights against the flags: one line naming the flag."""
    m = cfg.model
    first = "input_blocks.0.0.weight"
    if first not in state:
        raise CheckpointError(f"the file has no {first}: not an improved-/guided-diffusion "
                              "network (keys start with " + ", ".join(sorted(state)[:3]) + ")")
    ch_flag = "--classifier_width" if classifier else "--num_channels"
    width = int(np.shape(state[first])[0])
    if width != m.ch * m.ch_mult[0]:
        model_ch = m.time_embed_ch or m.ch
        ratio = m.ch * m.ch_mult[0] / model_ch
        raise _mismatch(ch_flag, model_ch, int(round(width / ratio)), first)
    inputs = {int(k.split(".")[1]) for k in state if k.startswith("input_blocks.")}
    levels = len(m.ch_mult)
    per_level = len(inputs) / levels - 1       # 1 + L*n + (L-1) input blocks
    depth_flag = "--classifier_depth" if classifier else "--num_res_blocks"
    if per_level != m.num_res_blocks:
        if per_level.is_integer() and per_level >= 1:
            raise _mismatch(depth_flag, m.num_res_blocks, int(per_level),
                            f"the {len(inputs)} input_blocks")
        raise ConfigError(f"--flags --image_size {m.resolution} (its {levels} levels) does not "
                          f"match the weights' {len(inputs)} input_blocks")
    n = m.num_res_blocks
    attn_at, res = [], m.resolution
    for level in range(levels):
        for j in range(n):
            if f"input_blocks.{1 + level * (n + 1) + j}.1.qkv.weight" in state:
                attn_at.append(res)
        res //= 2
    want = sorted({r for r in m.attn_resolutions if r in
                   [m.resolution >> i for i in range(levels)]})
    found = sorted(set(attn_at))
    if found != want and want and len(found) == len(want):
        ratio = want[0] / found[0] if found[0] else 0
        if ratio != 1 and all(w == f * ratio for w, f in zip(want, found)):
            raise _mismatch("--image_size", m.resolution, int(m.resolution / ratio),
                            f"the input_blocks' attention layers (at {found} for "
                            "--attention_resolutions " + ",".join(map(str, want[::-1])) + ")")
    if found != want:
        flag = ("--classifier_attention_resolutions" if classifier else "--attention_resolutions")
        raise _mismatch(flag, ",".join(map(str, sorted(want, reverse=True))) or "''",
                        ",".join(map(str, sorted(set(attn_at), reverse=True))),
                        "the input_blocks' attention layers")
    emb = state.get("input_blocks.1.0.emb_layers.1.weight")
    if emb is not None:
        shifted = int(np.shape(emb)[0]) == 2 * m.ch * m.ch_mult[0]
        if shifted != m.use_scale_shift_norm:
            flag = ("--classifier_use_scale_shift_norm" if classifier else "--use_scale_shift_norm")
            raise _mismatch(flag, m.use_scale_shift_norm, shifted,
                            "input_blocks.1.0.emb_layers.1.weight")
    if levels > 1:
        down = f"input_blocks.{n + 1}.0."
        updown = any(k.startswith(down + "in_layers") for k in state)
        if updown != m.resblock_updown:
            flag = "--classifier_resblock_updown" if classifier else "--resblock_updown"
            raise _mismatch(flag, m.resblock_updown, updown, f"input_blocks.{n + 1}")
    if classifier:
        return
    if ("label_emb.weight" in state) != (m.num_classes is not None):
        raise _mismatch("--class_cond", m.num_classes is not None, "label_emb.weight" in state,
                        "label_emb.weight")
    out = state.get("out.2.weight")
    if out is not None:
        sigma = int(np.shape(out)[0]) == 2 * m.out_channels
        if sigma != m.learn_sigma:
            raise _mismatch("--learn_sigma", m.learn_sigma, sigma, "out.2.weight")


def convert_adm(src_path: str, family: str, flags: str, checked_state) -> dict:
    """An improved-/guided-diffusion .pt (model or classifier) -> an inference-file dict.
    ``checked_state(cfg, state, source)`` loads the state into cfg's network strictly."""
    if family not in FAMILIES:
        raise ConfigError(f"unknown family {family!r}; choose one of {list(FAMILIES)}")
    state = read_pth(src_path)
    classifier = is_classifier_state(state)
    if classifier and family != "guided-diffusion":
        raise ConfigError(f"{src_path} holds a classifier; classifiers are guided-diffusion's: "
                          "use --from guided-diffusion")
    values = parse_flags(flags, family, classifier=classifier)
    cfg = flags_config(values, family, classifier=classifier)
    check_against_flags(state, cfg, classifier)
    weights = checked_state(cfg, to_ppddpm_state(state, cfg), str(src_path))
    betas = check_schedule(cfg.diffusion)
    ignored = values.pop("_ignored")
    options = {"converted_from": {"format": family, "path": str(src_path), "flags": flags,
                                  "classifier": classifier},
               "upstream_flags": {k: v for k, v in values.items()}, "ignored_flags": ignored}
    return {"model": weights, "betas": betas, "options": options, "config": cfg.to_dict(),
            "version": __version__}
