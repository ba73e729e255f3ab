"""Import a diffusers UNet2DModel (the official DDPM UNet as google/ddpm-* publish it).

    convert_diffusers_unet(src_dir) -> (state_dict, model_cfg, scheduler_info)

No torch: the weights are read from diffusion_pytorch_model.safetensors with
``safetensors_io``. Every source tensor is mapped to exactly one ppddpm tensor and every
ppddpm tensor must be filled, with matching shapes, or a CheckpointError lists the
offenders. Configurations the ppddpm UNet cannot reproduce raise ConfigError.
"""
from __future__ import annotations

import json
import os
import re
from typing import Dict, List, Optional, Tuple

import numpy as np
import paddle

from ..config import ConfigError, ModelConfig
from ..errors import CheckpointError
from ..io.safetensors_io import read_safetensors
from ..models.unet import UNet

__all__ = ["convert_diffusers_unet", "find_diffusers_files", "model_config_from_diffusers",
           "scheduler_info_from_diffusers"]

WEIGHTS = "diffusion_pytorch_model.safetensors"
MAX_LISTED = 20

# Settings that change the network; ppddpm reproduces only these values (the first one is
# assumed when the key is absent).
_REQUIRED = {
    "act_fn": ("silu", "swish"), "time_embedding_type": ("positional",),
    "resnet_time_scale_shift": ("default", "scale_shift"), "center_input_sample": (False,),
    "downsample_padding": (1, 0), "mid_block_scale_factor": (1, 1.0),
    "add_attention": (True,), "downsample_type": ("conv",), "upsample_type": ("conv",),
    "class_embed_type": (None,), "time_embedding_act_fn": (None,),
    "num_train_timesteps": (None,),
    "mid_block_type": ("UNetMidBlock2D",),
}

_DEFAULT_DOWN = ("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D")
_DEFAULT_UP = ("AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D")


def find_diffusers_files(src_dir: str) -> Tuple[str, str, Optional[str]]:
    """(config.json, weights, scheduler_config.json or None) for a UNet folder, a
    pipeline folder with unet/ and scheduler/ (google/ddpm-*), or both at top level."""
    src_dir = os.fspath(src_dir)
    if not os.path.isdir(src_dir):
        raise CheckpointError(f"{src_dir!r} is not a folder; give the diffusers model folder "
                              "(with config.json, or with unet/config.json)")
    unet_dir = os.path.join(src_dir, "unet")
    if not os.path.isfile(os.path.join(unet_dir, "config.json")):
        unet_dir = src_dir
    config = os.path.join(unet_dir, "config.json")
    if not os.path.isfile(config):
        raise CheckpointError(f"no config.json in {src_dir!r} (nor in its unet/ folder); is it "
                              "a diffusers UNet2DModel or DDPMPipeline folder?")
    weights = os.path.join(unet_dir, WEIGHTS)
    if not os.path.isfile(weights):
        others = sorted(f for f in os.listdir(unet_dir) if f.endswith((".bin", ".safetensors")))
        raise CheckpointError(f"{weights} does not exist (found: {others or 'no weight files'}); "
                              "ppddpm reads the .safetensors weights only (a .bin file needs "
                              "PyTorch): download diffusion_pytorch_model.safetensors")
    sched = None
    for cand in (os.path.join(src_dir, "scheduler", "scheduler_config.json"),
                 os.path.join(src_dir, "scheduler_config.json"),
                 os.path.join(os.path.dirname(os.path.abspath(unet_dir)), "scheduler",
                              "scheduler_config.json")):
        if os.path.isfile(cand):
            sched = cand
            break
    return config, weights, sched


def _load_json(path: str) -> dict:
    try:
        with open(path, "r", encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from None


def _attn_levels(down: List[str], up: List[str], path: str) -> List[int]:
    kinds = {"DownBlock2D": False, "AttnDownBlock2D": True}
    ukinds = {"UpBlock2D": False, "AttnUpBlock2D": True}
    for key, blocks, known in (("down_block_types", down, kinds), ("up_block_types", up, ukinds)):
        bad = [b for b in blocks if b not in known]
        if bad:
            raise ConfigError(f"{path}: {key} has {bad}, which ppddpm's UNet cannot express; "
                              f"supported: {sorted(known)}")
    if len(down) != len(up):
        raise ConfigError(f"{path}: down_block_types has {len(down)} levels and "
                          f"up_block_types {len(up)}; they must mirror each other")
    levels = [i for i, b in enumerate(down) if kinds[b]]
    if levels != [len(up) - 1 - k for k, b in enumerate(up) if ukinds[b]][::-1]:
        raise ConfigError(f"{path}: attention in down_block_types {down} and up_block_types "
                          f"{up} is not at mirrored levels, as the DDPM UNet needs")
    return levels


def model_config_from_diffusers(cfg: dict, path: str = "config.json",
                                learn_sigma: bool = False) -> ModelConfig:
    """The ModelConfig (arch 'unet') equivalent to a UNet2DModel config.json dict."""
    if cfg.get("_class_name", "UNet2DModel") != "UNet2DModel":
        raise ConfigError(f"{path}: _class_name is {cfg.get('_class_name')!r}, not UNet2DModel")
    wrong = {k: cfg[k] for k, ok in _REQUIRED.items() if cfg.get(k, ok[0]) not in ok}
    if wrong:
        k = next(iter(wrong))
        others = ", ".join(f"{o}={wrong[o]!r}" for o in list(wrong)[1:])
        raise ConfigError(f"{path}: {k}={wrong[k]!r} cannot be expressed by ppddpm's UNet "
                          f"(supported: {list(_REQUIRED[k])})"
                          + (f"; also unsupported: {others}" if others else ""))
    chans = [int(c) for c in cfg.get("block_out_channels", (224, 448, 672, 896))]
    ch = chans[0]
    if any(c % ch for c in chans):
        raise ConfigError(f"{path}: block_out_channels {chans} are not multiples of {ch}")
    size = cfg.get("sample_size")
    if size is None:
        raise ConfigError(f"{path}: sample_size is not set; the DDPM UNet needs the resolution")
    if isinstance(size, (list, tuple)):
        if len(set(size)) != 1:
            raise ConfigError(f"{path}: sample_size {size} is not square")
        size = size[0]
    levels = _attn_levels(list(cfg.get("down_block_types", _DEFAULT_DOWN)),
                          list(cfg.get("up_block_types", _DEFAULT_UP)), path)
    head = cfg.get("attention_head_dim", 8)   # head width; null: one head per block
    head = -1 if head is None else int(head)
    for c in [chans[i] for i in levels] + [chans[-1]]:   # the attention levels and the middle
        if head > 0 and c % head:
            raise ConfigError(f"{path}: attention_head_dim={head} does not divide the {c} "
                              "channels of an attention block")
    if head > 0 and all(c == head for c in [chans[i] for i in levels] + [chans[-1]]):
        head = -1                       # one head of all channels: the official attention
    scale_shift = cfg.get("resnet_time_scale_shift", "default") == "scale_shift"
    groups = int(cfg.get("norm_num_groups", 32))
    attn_groups = cfg.get("attn_norm_num_groups")
    if attn_groups is not None and int(attn_groups) != groups:
        raise ConfigError(f"{path}: attn_norm_num_groups={attn_groups} differs from "
                          f"norm_num_groups={groups}; ppddpm's UNet has one group count")
    # diffusers' middle attention has no GroupNorm with scale-shift unless attn_norm_num_groups
    mid_attn_norm = not scale_shift or attn_groups is not None
    temb_dim = cfg.get("time_embedding_dim")
    if temb_dim is not None and int(temb_dim) != 4 * ch:
        raise ConfigError(f"{path}: time_embedding_dim={temb_dim}, the DDPM UNet uses 4*ch={4 * ch}")
    out = int(cfg.get("out_channels", 3))
    if learn_sigma and out % 2:
        raise ConfigError(f"{path}: a learned variance needs an even out_channels, got {out}")
    ncls = cfg.get("num_class_embeds")
    return ModelConfig(
        arch="unet", ch=ch, ch_mult=[c // ch for c in chans],
        num_res_blocks=int(cfg.get("layers_per_block", 2)),
        attn_resolutions=[int(size) // 2 ** i for i in levels],
        dropout=float(cfg.get("dropout", 0.0)), in_channels=int(cfg.get("in_channels", 3)),
        out_channels=out // 2 if learn_sigma else out, resolution=int(size),
        learn_sigma=learn_sigma, num_classes=int(ncls) if ncls is not None else None,
        norm_groups=groups, norm_eps=float(cfg.get("norm_eps", 1e-5)),
        time_freq_shift=float(cfg.get("freq_shift", 0)),
        downsample_padding=int(cfg.get("downsample_padding", 1)), num_head_channels=head,
        use_scale_shift_norm=scale_shift, mid_attn_norm=mid_attn_norm)


_SCHEDULES = {"linear": "linear", "scaled_linear": "quad", "squaredcos_cap_v2": "cosine",
              "sigmoid": "sigmoid"}
_VARIANCES = {"fixed_small": "fixed_small", "fixed_small_log": "fixed_small",
              "fixed_large": "fixed_large", "fixed_large_log": "fixed_large",
              "learned": "learned", "learned_range": "learned_range"}
_PREDICTIONS = {"epsilon": "eps", "sample": "x0"}


def scheduler_info_from_diffusers(sched: dict, path: str = "scheduler_config.json") -> dict:
    """DiffusionConfig fields {beta_schedule, beta_start, beta_end, num_diffusion_steps,
    mean_type, var_type} from a DDPMScheduler config (diffusers' defaults where absent)."""
    if sched.get("trained_betas") is not None:
        raise ConfigError(f"{path}: trained_betas (an explicit beta list) cannot be imported "
                          "yet; use a scheduler with a named beta_schedule")
    problems = [f"{k}={sched[k]!r} (ppddpm has no such option)"
                for k in ("rescale_betas_zero_snr", "thresholding") if sched.get(k)]
    schedule = _SCHEDULES.get(sched.get("beta_schedule", "linear"))
    variance = _VARIANCES.get(sched.get("variance_type", "fixed_small"))
    mean = _PREDICTIONS.get(sched.get("prediction_type", "epsilon"))
    if schedule is None:
        problems.append(f"beta_schedule={sched.get('beta_schedule')!r} (known: {sorted(_SCHEDULES)})")
    if variance is None:
        problems.append(f"variance_type={sched.get('variance_type')!r} (known: {sorted(_VARIANCES)})")
    if mean is None:
        problems.append(f"prediction_type={sched.get('prediction_type')!r} "
                        f"(known: {sorted(_PREDICTIONS)})")
    if problems:
        raise ConfigError(f"{path}: cannot map " + "; ".join(problems))
    return {"beta_schedule": schedule, "beta_start": float(sched.get("beta_start", 0.0001)),
            "beta_end": float(sched.get("beta_end", 0.02)),
            "num_diffusion_steps": int(sched.get("num_train_timesteps", 1000)),
            "mean_type": mean, "var_type": variance}


_RES = {"norm1": "norm1", "conv1": "conv1", "time_emb_proj": "temb_proj", "norm2": "norm2",
        "conv2": "conv2", "conv_shortcut": "shortcut"}
_ATTN = {"group_norm": "norm", "to_q": "q", "query": "q", "to_k": "k", "key": "k",
         "to_v": "v", "value": "v", "to_out.0": "proj_out", "proj_attn": "proj_out"}
_LINEAR = re.compile(r"(temb\.\d|temb_proj|proj_out)\.weight$")


def _target(name: str, levels: int) -> Optional[str]:
    """ppddpm name for a diffusers tensor name (q/k/v get a '.q.' marker), or None."""
    top = {"time_embedding.linear_1": "temb.0", "time_embedding.linear_2": "temb.2",
           "conv_in": "conv_in", "conv_norm_out": "norm_out", "conv_out": "conv_out",
           "class_embedding": "label_emb"}
    stem, _, leaf = name.rpartition(".")
    if stem in top:
        return f"{top[stem]}.{leaf}"
    m = re.fullmatch(r"(down|up)_blocks\.(\d+)\.(resnets|attentions|downsamplers|upsamplers)"
                     r"\.(\d+)\.(.+)", stem)
    if m:
        side, i, kind, j, rest = m.groups()
        level = int(i) if side == "down" else levels - 1 - int(i)
        base = f"{side}.{level}"
    else:
        m = re.fullmatch(r"mid_block\.(resnets|attentions)\.(\d+)\.(.+)", stem)
        if not m:
            return None
        kind, j, rest = m.groups()
        base = "mid"
    if kind == "resnets" and rest in _RES:
        part = f"block_{int(j) + 1}" if base == "mid" else f"block.{j}"
        return f"{base}.{part}.{_RES[rest]}.{leaf}"
    if kind == "attentions" and rest in _ATTN:
        part = "attn_1" if base == "mid" else f"attn.{j}"
        return f"{base}.{part}.{_ATTN[rest]}.{leaf}"
    if kind in ("downsamplers", "upsamplers") and j == "0" and rest == "conv" and base != "mid":
        return f"{base}.{kind[:-3]}e.conv.{leaf}"   # downsample / upsample
    return None


def _map_tensors(src: Dict[str, np.ndarray], cfg: ModelConfig, flip_sin_to_cos: bool,
                 path: str) -> Tuple[Dict[str, np.ndarray], Dict[str, str], List[str]]:
    """Rename and reshape diffusers tensors: (state, {ppddpm name: source name}, unknown)."""
    state, origin, parts, unknown = {}, {}, {}, []
    for name, arr in src.items():
        tgt = _target(name, len(cfg.ch_mult))
        if tgt is None:
            unknown.append(f"{name} {list(arr.shape)}")
            continue
        arr = np.asarray(arr, dtype=np.float32)
        if arr.ndim == 4 and re.search(r"\.(q|k|v|proj_out)\.weight$", tgt):
            arr = arr.reshape(arr.shape[:2])          # 1x1-conv attention weights
        if arr.ndim == 2 and (_LINEAR.search(tgt) or re.search(r"\.(q|k|v)\.weight$", tgt)):
            arr = arr.T                               # torch Linear [out,in] -> paddle [in,out]
        if tgt == "temb.0.weight" and flip_sin_to_cos:  # [cos, sin] -> [sin, cos] input rows
            half = cfg.ch // 2
            arr = np.concatenate([arr[half:2 * half], arr[:half], arr[2 * half:]], axis=0)
        if tgt == "label_emb.weight":                 # + the "no label" row, zero
            arr = np.concatenate([arr, np.zeros_like(arr[:1])], axis=0)
        m = re.fullmatch(r"(.+)\.(q|k|v)\.(weight|bias)", tgt)
        if m:
            parts.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = (name, arr)
            continue
        if tgt in state:
            unknown.append(f"{name} {list(arr.shape)} (duplicate of another tensor for {tgt})")
            continue
        state[tgt], origin[tgt] = arr, name
    for (base, leaf), qkv in parts.items():   # q, k, v -> one qkv Linear
        if sorted(qkv) != ["k", "q", "v"]:
            unknown += [f"{n} {list(a.shape)} (no matching q/k/v)" for n, a in qkv.values()]
            continue
        shapes = {a.shape for _, a in qkv.values()}
        if len(shapes) != 1:
            unknown += [f"{n} {list(a.shape)} (q/k/v shapes differ)" for n, a in qkv.values()]
            continue
        state[f"{base}.qkv.{leaf}"] = np.concatenate([qkv[c][1] for c in "qkv"], axis=-1)
        origin[f"{base}.qkv.{leaf}"] = "+".join(qkv[c][0] for c in "qkv")
    return state, origin, unknown


def _expected_shapes(cfg: ModelConfig) -> Dict[str, Tuple[int, ...]]:
    with paddle.LazyGuard():     # shapes only: nothing is allocated or initialised
        model = UNet(cfg)
    return {k: tuple(int(s) for s in v.shape) for k, v in model.state_dict().items()}


def convert_diffusers_unet(src_dir: str) -> Tuple[Dict[str, np.ndarray], ModelConfig, dict]:
    """Read a diffusers UNet2DModel folder and return ppddpm data; writes nothing.

    Args:
        src_dir: a folder holding config.json + diffusion_pytorch_model.safetensors, or a
            pipeline folder (google/ddpm-*) with unet/ and scheduler/ sub-folders.
    Returns:
        (state_dict, model_cfg, scheduler_info):
        state_dict: {ppddpm UNet parameter name: float32 numpy array}, complete for model_cfg;
        model_cfg: ModelConfig(arch="unet", ...) that builds the matching network
            (time_freq_shift = diffusers' freq_shift; flip_sin_to_cos is folded into the
            first time-embedding weight; a class embedding gains a zero "no label" row);
        scheduler_info: DiffusionConfig fields (beta_schedule, beta_start, beta_end,
            num_diffusion_steps, mean_type, var_type) from scheduler_config.json, or {} when
            the folder has none. The scheduler's clip_sample is not carried (ppddpm clips
            x0 by default, as google/ddpm-* do).
    Raises:
        CheckpointError: missing/corrupt files; unknown, missing or mis-shaped tensors
            (all listed with names and shapes).
        ConfigError: a UNet2DModel or scheduler setting the DDPM UNet cannot reproduce.
    """
    config_path, weights_path, sched_path = find_diffusers_files(src_dir)
    cfg_json = _load_json(config_path)
    scheduler_info = {}
    if sched_path is not None:
        scheduler_info = scheduler_info_from_diffusers(_load_json(sched_path), sched_path)
    learn_sigma = scheduler_info.get("var_type") in ("learned", "learned_range")
    model_cfg = model_config_from_diffusers(cfg_json, config_path, learn_sigma)
    src, _ = read_safetensors(weights_path)
    state, origin, unknown = _map_tensors(src, model_cfg, bool(cfg_json.get("flip_sin_to_cos", True)),
                                  weights_path)
    expected = _expected_shapes(model_cfg)
    unknown += [f"{origin[k]} {list(src[origin[k]].shape) if origin[k] in src else ''}"
                f" (would be {k}, which this config does not have)"
                for k in state if k not in expected]
    missing = [f"{k} {list(s)}" for k, s in expected.items() if k not in state]
    wrong = [f"{origin[k]} -> {k}: config needs {list(s)}, file gives {list(state[k].shape)}"
             for k, s in expected.items() if k in state and tuple(state[k].shape) != s]
    if unknown or missing or wrong:
        lines = [f"{weights_path} does not match the UNet its config.json describes:"]
        for title, rows in (("unknown tensors", unknown), ("missing (ppddpm name, shape)", missing),
                            ("wrong shape (ppddpm name)", wrong)):
            if rows:
                lines.append(f"  {title} ({len(rows)}):")
                lines += [f"    {r}" for r in rows[:MAX_LISTED]]
                if len(rows) > MAX_LISTED:
                    lines.append(f"    ... and {len(rows) - MAX_LISTED} more")
        raise CheckpointError("\n".join(lines))
    return {k: state[k] for k in expected}, model_cfg, scheduler_info
